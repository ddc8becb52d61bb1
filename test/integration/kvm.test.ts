/**
 * The KVM probe against the machine's real /dev/kvm (where there is none, the probe must say so). Read-only for the host: the
 * probe creates a throw-away VM; nothing here touches udev or the device's permissions.
 *
 * The assertions hold on any host (hardware KVM, emulating KVM, broken KVM) but are not vacuous: the probe must
 * finish inside its deadline, must have got as far as KVM_RUN on x86_64, and `guestRan` / `usable` must agree with
 * the markers only a real guest run produces (rip past the `hlt`, the loop counter in rcx).
 */
import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import * as os from 'node:os';
import { probeKvm } from '../../src/install-nix/kvm.js';

const haveKvm = existsSync('/dev/kvm');
const x86 = os.arch() === 'x64';
const root = process.getuid?.() === 0;

describe('probeKvm on the real /dev/kvm', () => {
  it('reports a missing device as missing, never as usable', async () => {
    const p = await probeKvm({ device: haveKvm ? '/dev/kvm-absent' : '/dev/kvm' });
    expect(p.device).toBe(false);
    expect(p.usable).toBe(false);
  });

  // A hang fails through the per-test timeout (the deadline plus a grace), not through a timing assertion.
  it.each([[3000], [600]])(
    'finishes within %i ms with a result backed by a guest run',
    async (timeoutMs) => {
      const p = await probeKvm({ timeoutMs });
      console.log(`KVM probe (${timeoutMs} ms budget): ${JSON.stringify(p)}`);
      if (!haveKvm) {
        expect(p.device).toBe(false);
        expect(p.usable).toBe(false);
        return;
      }
      expect(p.device).toBe(true);
      if (root) expect(p.readWrite).toBe(true);
      if (!p.readWrite) return; // a non-root user without access: nothing more to check
      expect(p.vmCreated).toBe(true);
      if (!x86) {
        expect(p.guestRan).toBe('not-attempted');
        expect(p.usable).toBe(false);
        return;
      }
      // The probe got as far as entering the guest, in this order.
      expect(p.stages.slice(0, 8)).toEqual(['arch', 'open', 'api', 'vm', 'mem', 'vcpu', 'regs', 'run']);
      // guestRan comes from the `hlt` marker (printed only after KVM_EXIT_HLT with rip moved past the hlt).
      expect(p.guestRan).toBe(p.stages.includes('hlt'));
      // usable needs both the guest run and the speed loop finishing in time.
      expect(p.usable).toBe(p.guestRan === true && p.stages.includes('fast'));
      if (!p.usable) expect(p.reason).toMatch(/HLT|loop|exit reason|failed/);
    },
    10_000,
  );
});
