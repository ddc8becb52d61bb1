/**
 * oci-push: push an image Nix built (push mode) or a multi-platform index of images earlier jobs pushed (index
 * mode). Outputs `digest` and `refs` first (what later steps need), then `metadata`, then the job summary.
 */
import { formatBytes, pushedRefs, renderMetadata, renderSummary, totals, type PushReport } from './report.js';
import type { Platform } from '../platform/types.js';
import { resolveImage } from './build-image.js';
import { pushIndex } from './index-mode.js';
import { parsePushInputs } from './inputs.js';
import { pushImage } from './push.js';
import { Registries } from './targets.js';

function logTotals(p: Platform, report: PushReport): void {
  for (const repo of report.repositories)
    for (const image of repo.images) {
      const t = totals(image.layers);
      p.log(
        'info',
        `${repo.registry}/${repo.repository}: ${t.layers} layers, ${t.uploaded} uploaded (${formatBytes(t.bytes)}), ` +
          `${t.mounted} mounted, ${t.skipped} already there`,
      );
    }
}

export async function main(p: Platform): Promise<void> {
  const inputs = parsePushInputs(p);
  const registries = new Registries(p, inputs);
  try {
    let report: PushReport;
    if (inputs.mode === 'index') report = await pushIndex(p, inputs, registries);
    else {
      // Not awaited here: pushImage asks the registries what they have while Nix builds the image.
      const image = resolveImage(p, inputs.image as NonNullable<typeof inputs.image>);
      report = await pushImage(p, inputs, registries, image);
    }
    p.setOutput('digest', report.digest);
    p.setOutput('refs', pushedRefs(report).join(' '));
    p.setOutput('metadata', renderMetadata(report));
    logTotals(p, report);
    p.log('info', `Pushed ${report.digest} in ${report.seconds.toFixed(1)} s: ${pushedRefs(report).join(' ')}`);
    await p.appendSummary(renderSummary(report));
  } finally {
    registries.close();
  }
}
