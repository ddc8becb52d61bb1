// A build result of one attribute as the engine reports it (src/build/results.ts), for the reporting tests: a
// passing `checks.x86_64-linux.<name>` unless `extra` says otherwise.
import type { AttrResult } from '../../src/build/results.js';

export const attrResult = (name: string, extra: Partial<AttrResult> = {}): AttrResult => ({
  attr: `checks.x86_64-linux.${name}`,
  attrPath: ['checks', 'x86_64-linux', name],
  system: 'x86_64-linux',
  drvPath: `/nix/store/${'a'.repeat(32)}-${name}.drv`,
  outputs: { out: `/nix/store/${'b'.repeat(32)}-${name}` },
  features: [],
  status: 'built',
  duration: 1.5,
  attempts: 1,
  ...extra,
});
