# A small NixOS-like system for the sizing tests (tests/e2e/test_estimate.py), built with
# /bin/sh so that any Nix realises it without nixpkgs: a package, a fixed-output file
# fetched from a file:// URL (as fetchurl's are), a source tree in inputSrcs (as a flake's
# nixpkgs is, named "source" alike), and glue that references all three.
{ version, blobUrl, blobHash, tree, size ? "20000000" }:
let
  system = builtins.currentSystem;
  blob = derivation {
    name = "blob.bin";
    system = "builtin";
    builder = "builtin:fetchurl";
    url = blobUrl;
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = blobHash;
  };
  source = builtins.path { path = tree; name = "source"; };
  app = derivation {
    name = "app-${version}";
    inherit system;
    builder = "/bin/sh";
    args = [ "-c" ''
      PATH=/usr/bin:/bin
      mkdir $out
      head -c ${size} /dev/zero > $out/data
      echo ${version} > $out/version
    '' ];
  };
  # As NixOS's registry.json: the source's path written into a file of the output.
  etc = derivation {
    name = "etc";
    inherit system;
    builder = "/bin/sh";
    registry = builtins.toJSON { flakes = [ { to = { type = "path"; path = "${source}"; }; } ]; };
    args = [ "-c" ''
      PATH=/usr/bin:/bin
      mkdir $out
      printf '%s' "$registry" > $out/registry.json
    '' ];
  };
in
derivation {
  name = "nixos-system-box-${version}";
  inherit system app etc blob;
  builder = "/bin/sh";
  # A source run as the builder's script, never referenced by the output.
  args = [ ./glue.sh ];
}
