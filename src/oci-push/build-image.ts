/**
 * The `image` input as a path: a flake attribute is built with the Nix on PATH (install-nix puts it there), asking
 * for the output path the way that version can print it: `--print-out-paths` from Nix 2.9, `--json` before.
 */
import * as path from 'node:path';
import { CommandError } from '../exec.js';
import { InputError, errorMessage } from '../errors.js';
import { NixCommand, nixBinOnPath, outPaths, parseBuildOutputs, parsePrintOutPaths } from '../nix/index.js';
import type { Platform } from '../platform/types.js';
import type { ImageInput } from './inputs.js';

export async function resolveImage(p: Platform, image: ImageInput): Promise<string> {
  if (image.kind === 'path') return path.resolve(image.path);
  const bin = nixBinOnPath(p);
  if (!bin)
    throw new InputError(
      `Input 'image' is the flake attribute '${image.installable}', but there is no 'nix' on PATH to build it: ` +
        'run install-nix in an earlier step, or give the path of an image that is already built.',
    );
  const nix = await NixCommand.detect(p, bin);
  const args = ['build', '--no-link', ...nix.buildOutputArgs(), image.installable];
  const res = await p.group(`nix build ${image.installable}`, async () => {
    try {
      return await nix.run(args, { stream: 'info' });
    } catch (e) {
      if (e instanceof CommandError)
        throw new InputError(`Building the image '${image.installable}' failed: ${errorMessage(e)}`);
      throw e;
    }
  });
  const paths = nix.features.printOutPaths ? parsePrintOutPaths(res.stdout) : outPaths(parseBuildOutputs(res.stdout));
  if (paths.length !== 1)
    throw new InputError(
      `Building '${image.installable}' gave ${paths.length} outputs (${paths.join(', ') || 'none'}); ` +
        'name the one holding the image, e.g. .#dockerImage.out',
    );
  p.log('info', `Built ${image.installable}: ${paths[0]}`);
  return paths[0] as string;
}
