{
  description = "flake-ci example: a nixpkgs-free flake that builds and checks on any Linux runner";

  outputs =
    { self }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAll = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);
      # No nixpkgs: the builder is the runner's /bin/sh and only shell builtins are used, so nothing is downloaded.
      hello =
        system:
        derivation {
          name = "hello";
          inherit system;
          builder = "/bin/sh";
          args = [
            "-c"
            "echo 'Hello from flake-ci' > $out"
          ];
        };
    in
    {
      packages = forAll (system: {
        default = hello system;
        hello = hello system;
      });
      checks = forAll (system: {
        hello = derivation {
          name = "hello-check";
          inherit system;
          builder = "/bin/sh";
          args = [
            "-c"
            "read -r line < ${hello system}; [ \"$line\" = 'Hello from flake-ci' ] && echo ok > $out"
          ];
        };
      });
    };
}
