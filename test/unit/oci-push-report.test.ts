// The push report: refs pinned by digest, a metadata JSON later jobs can read, and a job summary that stays small.
import { describe, expect, it } from '@jest/globals';
import type { LayerReport } from '../../src/oci/types.js';
import {
  formatBytes,
  pushedRefs,
  renderMetadata,
  renderSummary,
  totals,
  type ImageReport,
  type PushReport,
} from '../../src/oci-push/report.js';

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const MANIFEST = `sha256:${'f'.repeat(64)}`;

function layer(n: number, action: LayerReport['action']): LayerReport {
  const size = 1_000_000 * n;
  return { digest: d(n), diffId: d(1000 + n), size, action, bytes: action === 'uploaded' ? size : 0, seconds: n / 3 };
}

function image(layers: LayerReport[], arch = 'amd64'): ImageReport {
  return {
    platform: { os: 'linux', architecture: arch },
    digest: MANIFEST,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { digest: d(999), size: 1234, action: 'uploaded' },
    layers,
  };
}

const report: PushReport = {
  mode: 'push',
  digest: MANIFEST,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  seconds: 12.3456,
  repositories: [
    {
      registry: 'ghcr.io',
      repository: 'o/app',
      tags: ['1.0', 'latest'],
      images: [image([layer(1, 'uploaded'), layer(2, 'skipped'), layer(3, 'uploaded')])],
    },
    {
      registry: 'ghcr.io',
      repository: 'o/mirror',
      tags: [],
      images: [image([layer(1, 'mounted'), layer(2, 'mounted'), layer(3, 'skipped')])],
    },
  ],
};

describe('push report', () => {
  it('lists refs pinned by digest, by digest alone for a repository without tags', () => {
    expect(pushedRefs(report)).toEqual([
      `ghcr.io/o/app:1.0@${MANIFEST}`,
      `ghcr.io/o/app:latest@${MANIFEST}`,
      `ghcr.io/o/mirror@${MANIFEST}`,
    ]);
  });

  it('adds up layers by action', () => {
    expect(totals(report.repositories[0]?.images[0]?.layers ?? [])).toEqual({
      layers: 3,
      uploaded: 2,
      mounted: 0,
      skipped: 1,
      bytes: 4_000_000,
      size: 6_000_000,
    });
  });

  it('renders metadata as JSON with every layer, per repository and platform', () => {
    const m = JSON.parse(renderMetadata(report));
    expect(m).toMatchObject({ mode: 'push', digest: MANIFEST, seconds: 12.346, refs: pushedRefs(report) });
    expect(m.repositories).toHaveLength(2);
    const img = m.repositories[1].images[0];
    expect(img.platform).toBe('linux/amd64');
    expect(img.totals).toMatchObject({ mounted: 2, skipped: 1, uploaded: 0, bytes: 0 });
    expect(img.layers[0]).toEqual({
      digest: d(1),
      diffId: d(1001),
      size: 1_000_000,
      action: 'mounted',
      bytes: 0,
      seconds: 0.333,
    });
  });

  it('renders a summary with refs and a per-layer table per repository and platform', () => {
    const md = renderSummary(report);
    expect(md).toContain('### oci-push: image `sha256:ffffffffffff`');
    expect(md).toContain(`| \`ghcr.io/o/app:latest\` | \`${MANIFEST}\` |`);
    expect(md).toContain(
      'ghcr.io/o/app · linux/amd64 · sha256:ffffffffffff: 3 layers (5.7 MiB), 2 uploaded (3.8 MiB sent), 1 already there',
    );
    expect(md).toContain(
      'ghcr.io/o/mirror · linux/amd64 · sha256:ffffffffffff: 3 layers (5.7 MiB), 2 mounted, 1 already there',
    );
    expect(md).toContain('| 3 | `sha256:000000000000` | `sha256:000000000000` | 2.9 MiB | uploaded | 2.9 MiB | 1.0 |');
    expect(md).toContain('| | config `sha256:000000000000` | | 1.2 KiB | uploaded | | |');
    expect(md).toContain('Pushed in 12.3 s.');
    expect(md).not.toContain('left out');
  });

  it('caps the summary, keeping the totals and pointing at metadata', () => {
    const many: PushReport = {
      ...report,
      mode: 'index',
      repositories: [
        {
          registry: 'ghcr.io',
          repository: 'o/app',
          tags: ['1.0'],
          images: ['amd64', 'arm64', 's390x', 'ppc64le'].map((arch) =>
            image(
              Array.from({ length: 100 }, (_, i) => layer(i + 1, 'uploaded')),
              arch,
            ),
          ),
        },
      ],
    };
    const full = renderSummary(many, 1 << 20);
    expect(full).not.toContain('left out');
    const capped = renderSummary(many, 20_000);
    expect(Buffer.byteLength(capped)).toBeLessThanOrEqual(20_000);
    expect(capped).toContain('### oci-push: image index');
    expect(capped).toContain('the `metadata` output has them');
    for (const arch of ['amd64', 'arm64', 's390x', 'ppc64le']) expect(capped).toContain(`linux/${arch}`);
    // The refs always go in; the layer lines go as far as the budget allows.
    const tiny = renderSummary(many, 600);
    expect(tiny).toContain(`| \`ghcr.io/o/app:1.0\` | \`${MANIFEST}\` |`);
    expect(tiny).toContain('left out');
    expect(tiny).not.toContain('linux/ppc64le');
  });

  it('formats bytes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(5 * 1024 ** 3)).toBe('5.0 GiB');
  });
});
