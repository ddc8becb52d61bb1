/**
 * The KVM probe program, in Perl because Node cannot call ioctl(2) and Perl (perl-base) is on every Debian/Ubuntu
 * image and GitHub runner. It only uses perl-base modules (Config, POSIX): Time::HiRes is not in perl-base.
 *
 * It goes as far as running a guest, because the device node opening and KVM_CREATE_VM succeeding prove nothing
 * about guests running: on some hosts (software KVM back ends such as PVM) guest code is emulated and real VMs
 * effectively hang. Two guests run in one VM:
 *   1. real mode, `hlt` at address 0: proves KVM enters a guest and returns with KVM_EXIT_HLT;
 *   2. 64-bit long mode, a 2^25-iteration `dec ecx; jnz` loop then `hlt`: hardware-assisted KVM finishes it in
 *      tens of milliseconds, an emulating back end needs many seconds, so it tells the two apart.
 * Each guest run is bounded by setitimer(2); SIGALRM makes KVM_RUN return EINTR. The parent also kills us, for the
 * case where KVM_RUN never returns.
 *
 * Output is one marker per line, flushed at once, so the parent knows how far we got even if it has to kill us:
 *   arch NAME | open | api 12 | vm | mem | vcpu | regs | run | hlt RIP MS | loop N | fast DONE MS | slow DONE MS
 *   stuck hlt MS | exit PHASE REASON RIP | skip ARCH | error STAGE ERRNO TEXT
 * Facts (ioctl numbers, struct layouts) are from the kernel's Documentation/virt/kvm/api.rst and uapi headers:
 * kvm_userspace_memory_region is u32 slot, u32 flags, u64 guest_phys_addr, u64 memory_size, u64 userspace_addr;
 * kvm_regs is 18 u64 (rip at index 16, rflags 17); kvm_sregs is 8 kvm_segment of 24 bytes (cs ds es fs gs ss tr
 * ldt), 2 kvm_dtable of 16, then cr0 cr2 cr3 cr4 cr8 efer apic_base and a 4 x u64 bitmap (312 bytes); kvm_run has
 * exit_reason as u32 at offset 8.
 */
export const KVM_PROBE_PL = String.raw`
use strict; use warnings; use Config; use POSIX ();
$| = 1;
my ($dev, $phase_ms) = @ARGV;
sub mark { print join(' ', @_), "\n" }
sub fail { my $e = $! + 0; mark('error', $_[0], $e, "$!"); exit 0 }
# ioctl through @_ aliases so that buffers the kernel fills come back to the caller; '0 but true' is a 0 result.
sub io { my $r = ioctl($_[0], $_[1], $_[2]); defined $r or fail($_[3]); return $r eq '0 but true' ? 0 : $r + 0 }

mark('arch', $Config{archname});
open(my $kvm, '+<', $dev) or fail('open');
mark('open');
my $api = io($kvm, 0xAE00, 0, 'KVM_GET_API_VERSION');
if ($api != 12) { mark('error', 'KVM_GET_API_VERSION', 0, "API version $api, expected 12"); exit 0 }
mark('api', $api);
my $vmfd = io($kvm, 0xAE01, 0, 'KVM_CREATE_VM');
open(my $vm, '+<&=', $vmfd) or fail('fdopen');
mark('vm');

# Register layouts and syscall numbers below are x86_64 ones; elsewhere prove what we can and say so.
if ($Config{archname} !~ /^x86_64/) {
  io($vm, 0xAE41, 0, 'KVM_CREATE_VCPU');
  mark('vcpu');
  mark('skip', $Config{archname});
  exit 0;
}
# KVM_SET_TSS_ADDR: Intel needs it to run real mode without "unrestricted guest"; harmless elsewhere.
ioctl($vm, 0xAE47, 0xfffbd000);

# Guest memory, 16 KiB: 0x0 hlt (real mode); 0x10 mov ecx, N; dec ecx; jnz -4; hlt (long mode);
# 0x1000 PML4 -> 0x2000 PDPT -> 0x3000 PD with one 2 MiB identity page.
my $loops = 1 << 25;
my $img = "\xF4" . ("\0" x 15) . pack('CL', 0xB9, $loops) . "\xFF\xC9\x75\xFC\xF4";
$img .= "\0" x (0x1000 - length $img);
$img .= pack('Q', $_) . ("\0" x 4088) for (0x2003, 0x3003, 0x83);
my $size = length $img;
# A memfd (syscall 319) gives page-aligned shared memory we can fill with plain write(2) before mmap (9).
my $name = 'flake-ci-kvm';
my $memfd = syscall(319, $name, 0);
my $memh;
if ($memfd >= 0) { open($memh, '+<&=', $memfd) or fail('memfd') } else { open($memh, '+>', undef) or fail('memfd') }
(syswrite($memh, $img) // -1) == $size or fail('write');
my $mem = syscall(9, 0, $size, 3, 1, fileno($memh), 0);
$mem == -1 and fail('mmap');
io($vm, 0x4020AE46, pack('LLQQQ', 0, 0, 0, $size, $mem), 'KVM_SET_USER_MEMORY_REGION');
mark('mem');
my $cpufd = io($vm, 0xAE41, 0, 'KVM_CREATE_VCPU');
open(my $cpu, '+<&=', $cpufd) or fail('fdopen');
mark('vcpu');
my $runsz = io($kvm, 0xAE04, 0, 'KVM_GET_VCPU_MMAP_SIZE');
my $run = syscall(9, 0, $runsz, 3, 1, $cpufd, 0);
$run == -1 and fail('mmap');

my $sregs = "\0" x 312;
io($cpu, 0x8138AE83, $sregs, 'KVM_GET_SREGS');
substr($sregs, 0, 8) = pack('Q', 0);
substr($sregs, 12, 2) = pack('S', 0);
io($cpu, 0x4138AE84, $sregs, 'KVM_SET_SREGS');
# rip 0; rflags bit 1 is reserved and must be set.
io($cpu, 0x4090AE82, pack('Q18', (0) x 16, 0, 2), 'KVM_SET_REGS');
mark('regs');

$SIG{ALRM} = sub { };
sub timer { my $us = shift; my $t = pack('q4', 0, 0, int($us / 1000000), $us % 1000000); syscall(38, 0, $t, 0) }
sub regs { my $b = "\0" x 144; io($cpu, 0x8090AE81, $b, 'KVM_GET_REGS'); return unpack('Q18', $b) }
# One KVM_RUN bounded by the timer: returns the exit reason (or 'timeout') and the elapsed milliseconds.
sub guest {
  my $t0 = (POSIX::times())[0];
  timer($phase_ms * 1000);
  my $r = ioctl($cpu, 0xAE80, 0);
  my $e = $! + 0;
  timer(0);
  my $ms = int(((POSIX::times())[0] - $t0) * 1000 / POSIX::sysconf(POSIX::_SC_CLK_TCK()));
  if (!defined $r) { return ('timeout', $ms) if $e == POSIX::EINTR(); $! = $e; fail('KVM_RUN') }
  return (unpack('x8 L', unpack('P12', pack('J', $run))), $ms);
}

mark('run');
my ($why, $ms) = guest();
if ($why eq 'timeout') { mark('stuck', 'hlt', $ms); exit 0 }
my @r = regs();
if ($why != 5) { mark('exit', 'hlt', $why, $r[16]); exit 0 }
mark('hlt', $r[16], $ms);

# Long mode: 64-bit code segment (type 11, s, present, l, g), data segments (type 3, s, present, db, g),
# cr0 = PE MP ET NE WP AM PG, cr3 = PML4, cr4 = PAE, efer = LME LMA.
my $code = pack('QLSC10', 0, 0xFFFFFFFF, 8, 11, 1, 0, 0, 1, 1, 1, 0, 0, 0);
my $data = pack('QLSC10', 0, 0xFFFFFFFF, 16, 3, 1, 0, 1, 1, 0, 1, 0, 0, 0);
substr($sregs, 0, 24) = $code;
substr($sregs, 24 * $_, 24) = $data for 1 .. 5;
substr($sregs, 224, 48) = pack('Q6', 0x80050033, 0, 0x1000, 0x20, 0, 0x500);
io($cpu, 0x4138AE84, $sregs, 'KVM_SET_SREGS');
io($cpu, 0x4090AE82, pack('Q18', (0) x 16, 0x10, 2), 'KVM_SET_REGS');
mark('loop', $loops);
($why, $ms) = guest();
@r = regs();
my $done = $loops - ($r[2] & 0xFFFFFFFF);
if ($why eq 'timeout') { mark('slow', $done, $ms); exit 0 }
if ($why != 5) { mark('exit', 'loop', $why, $r[16]); exit 0 }
mark('fast', $done, $ms);
`;
