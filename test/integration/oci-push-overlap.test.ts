/**
 * pushImage asks the registries which layers they already have while the image is still being built: the build is
 * stood in for by a promise that settles only once the registry (behind a request-logging proxy) has been asked for
 * the target tag's manifest. Were the lookup still waiting for the image, that promise would never settle and the
 * test would time out. The lookup's log lines wait for its own group instead of landing inside the build's.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { InputError } from '../../src/errors.js';
import { parsePushInputs } from '../../src/oci-push/inputs.js';
import { pushImage } from '../../src/oci-push/push.js';
import { Registries } from '../../src/oci-push/targets.js';
import { RecordingPlatform } from '../../src/platform/recording.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.mjs';
import { fixtures, type Fixtures } from '../support/oci-push.js';
import { startRegistry, type Registry } from '../support/registry.mjs';

let fx: Fixtures;
let reg: Registry;
let proxy: FaultProxy;

beforeAll(async () => {
  fx = await fixtures();
  reg = await startRegistry();
  proxy = await startFaultProxy({ target: reg.url });
}, 300_000);

afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
});

/** Settles once the proxy has seen a GET of `path`; fails, naming it, if that has not happened within 20 s. */
function whenAsked(path: string, then: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      if (proxy.log.some((l) => l.method === 'GET' && l.path === path)) {
        clearInterval(poll);
        then();
        resolve();
      } else if (Date.now() - started > 20_000) {
        clearInterval(poll);
        reject(new Error(`the registry was never asked for ${path} while the image was being built`));
      }
    }, 5);
  });
}

function setup(repo: string) {
  const p = new RecordingPlatform({ image: fx.archive, tags: `${proxy.host}/${repo}:v1` });
  const inputs = parsePushInputs(p);
  return { p, inputs, registries: new Registries(p, inputs) };
}

describe('the registries are asked while the image builds', () => {
  it('looks up the target tag before the image is ready, and logs the lookup in its own group', async () => {
    const { p, inputs, registries } = setup('overlap/app');
    try {
      const built = whenAsked('/v2/overlap/app/manifests/v1', () => p.log('info', 'image built')).then(
        () => fx.archive,
      );
      const report = await pushImage(p, inputs, registries, built);
      expect(report.repositories[0]?.images[0]?.layers.map((l) => l.action)).toEqual([
        'uploaded',
        'uploaded',
        'uploaded',
      ]);
      const lines = p.logs.map((l) => l.message);
      const builtAt = lines.indexOf('image built');
      const learnedAt = lines.findIndex((m) => m.endsWith('/overlap/app:v1: 0 layers learned'));
      expect({ builtAt, learnedAt: learnedAt > builtAt }).toEqual({ builtAt: expect.any(Number), learnedAt: true });
      expect(p.groups.slice(0, 2)).toEqual(['Layers the registries already have', 'Layers']);
    } finally {
      registries.close();
    }
  }, 120_000);

  it('reports a failed build as such, whatever the lookup is doing', async () => {
    const { p, inputs, registries } = setup('overlap/broken');
    try {
      const failed = whenAsked('/v2/overlap/broken/manifests/v1', () => undefined).then(() => {
        throw new InputError("Building the image '.#broken' failed: exit 1");
      });
      await expect(pushImage(p, inputs, registries, failed)).rejects.toThrow("Building the image '.#broken' failed");
      expect(p.groups).not.toContain('Layers');
      expect(proxy.log.filter((l) => l.path?.startsWith('/v2/overlap/broken/blobs/'))).toEqual([]);
    } finally {
      registries.close();
    }
  }, 120_000);
});
