// Types for remote-builder.mjs (plain JS, shared with bench/ and scripts/).
import type { SpawnSyncReturns } from 'node:child_process';

export interface RemoteBuilderOptions {
  /** The Nix whose nix-store / nix-daemon the remote runs: first on the remote PATH (default /usr/bin). */
  nixBin?: string;
  /** The remote's host name (its own UTS namespace), readable by builds there. Default flake-ci-remote-<random>. */
  hostname?: string;
  /** The remote Nix's `system-features` (say kvm and nixos-test, for VM tests); default Nix's own. */
  systemFeatures?: string[];
}
export interface RemoteBuilder {
  /** The remote's address on its veth (a private 10.x /30 created for this builder). */
  address: string;
  /** This host's end of the veth pair. */
  hostAddress: string;
  user: string;
  hostname: string;
  nixBin: string;
  /** The remote's /nix/store as seen from this host (a temp directory bind-mounted at /nix over there). */
  storeDir: string;
  /** Private half of the throwaway client key that authorized_keys accepts. */
  clientKey: string;
  clientKeyPath: string;
  /** The remote sshd's public host key line (`ssh-ed25519 AAAA... comment`). */
  hostPublicKey: string;
  /** Base64 of hostPublicKey: field 8 of a Nix machine spec. */
  hostKeyBase64: string;
  /** `ssh://root@ADDRESS` (or ssh-ng://...). */
  uri(scheme?: 'ssh' | 'ssh-ng'): string;
  /** sshd's own log so far. */
  log(): string;
  /** Runs a command on the remote over ssh with the client key and the pinned host key. */
  ssh(args: string[]): SpawnSyncReturns<string>;
  /** Kills sshd and everything in its namespaces, deletes the namespace (and veth pair) and the temp directory. */
  stop(): Promise<void>;
}
export declare function requireRemoteBuilderTools(): void;
export declare function startRemoteBuilder(opts?: RemoteBuilderOptions): Promise<RemoteBuilder>;
