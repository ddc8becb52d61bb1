// Image references (src/oci/registry/reference.ts): one grammar, read as docker reads it or under the stricter
// policy of the action inputs (src/oci-push/references.ts), with errors naming the reference and, for inputs, the
// input.
import { describe, expect, it } from '@jest/globals';
import {
  apiHost,
  formatReference,
  fullReference,
  isLoopback,
  parseReference,
} from '../../src/oci/registry/reference.js';

describe('parseReference', () => {
  const digest = `sha256:${'a'.repeat(64)}`;
  it.each([
    ['alpine', 'docker.io', 'library/alpine', 'latest', undefined],
    ['docker://user/app:1.2', 'docker.io', 'user/app', '1.2', undefined],
    ['index.docker.io/library/nginx:1', 'docker.io', 'library/nginx', '1', undefined],
    ['localhost:5000/a/b:t', 'localhost:5000', 'a/b', 't', undefined],
    ['localhost/x', 'localhost', 'x', 'latest', undefined],
    [`127.0.0.1:5000/a/b@${digest}`, '127.0.0.1:5000', 'a/b', undefined, digest],
    [`[::1]:5000/x:y@${digest}`, '[::1]:5000', 'x', 'y', digest],
    ['Registry.Example.com/a__b/c-d.e:v_1', 'registry.example.com', 'a__b/c-d.e', 'v_1', undefined],
  ])('%s', (input, registry, repository, tag, dig) => {
    const ref = parseReference(input);
    expect(ref).toEqual({ registry, repository, ...(tag ? { tag } : {}), ...(dig ? { digest: dig } : {}) });
    expect(parseReference(formatReference(ref))).toEqual(ref);
  });

  it('refuses bad references with the reference in the message', () => {
    for (const [bad, why] of [
      ['', /empty/],
      ['https://ghcr.io/a/b', /URL scheme/],
      ['a/b@sha256:abc', /not a digest/],
      ['a/b:-bad', /not a valid tag/],
      ['a/-b', /not a valid repository path component/],
      ['ghcr.io/', /repository name is missing/],
      ['ghcr.io/Owner-x/r', /must be lower-case: use 'owner-x\/r'/],
    ] as const)
      expect(() => parseReference(bad)).toThrow(new RegExp(`Invalid image reference '${bad}'.*${why.source}`));
  });

  it('reads action inputs under the stricter policy of the same grammar, naming the input in errors', () => {
    const tags = fullReference('tags', { digest: false });
    // No `latest` made up for a push target (no tag: push by digest), and docker's transport prefix is understood.
    expect(parseReference('ghcr.io/o/app', tags)).toEqual({ registry: 'ghcr.io', repository: 'o/app' });
    expect(parseReference('docker://ghcr.io/o/app:1', tags)).toEqual({
      registry: 'ghcr.io',
      repository: 'o/app',
      tag: '1',
    });
    expect(() => parseReference('app:1', tags)).toThrow(
      /^Input 'tags' holds 'app:1', which names no registry \(Docker Hub is never assumed\)\. Write a full reference/,
    );
    expect(() => parseReference(`ghcr.io/o/app@${digest}`, tags)).toThrow(/can be read but not pushed to/);
    // The docker reading of the same text.
    expect(parseReference('app:1')).toEqual({ registry: 'docker.io', repository: 'library/app', tag: '1' });
    expect(parseReference('registry-1.docker.io/x/y:1')).toMatchObject({ registry: 'docker.io' });
    const sha512 = `sha512:${'b'.repeat(128)}`;
    expect(parseReference(`a/b@${sha512}`).digest).toBe(sha512);
    expect(() => parseReference(`ghcr.io/a/b@${sha512}`, fullReference('sources', { digest: true }))).toThrow(
      /^Input 'sources' holds .*not a digest \(sha256:/,
    );
    expect(() => parseReference('ghcr.io/a/b', fullReference('cache-from', { digest: true, pinned: true }))).toThrow(
      /'cache-from'.*names no tag or digest to read/,
    );
  });

  it('maps docker.io to its API host and knows loopback', () => {
    expect(apiHost('docker.io')).toBe('registry-1.docker.io');
    expect(apiHost('ghcr.io')).toBe('ghcr.io');
    expect(['127.0.0.1:5000', 'localhost', '[::1]:80', 'ghcr.io', '127.0.0.2'].map(isLoopback)).toEqual([
      true,
      true,
      true,
      false,
      false,
    ]);
  });
});
