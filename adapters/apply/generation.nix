# An intermediate generation: a directory of links to the chosen component paths.
#
# `paths` is a JSON list of store paths. `builtins.storePath` makes each one an input of the
# derivation, so it is substituted when missing and becomes a reference of the output: the
# generation's closure is exactly the union of the chosen components' closures.
{ name, paths }:
let
  inputs = map builtins.storePath (builtins.fromJSON paths);
in
derivation {
  inherit name;
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [
    "-c"
    ''
      set -e
      PATH=/usr/bin:/bin
      mkdir "$out"
      i=0
      for p in ${toString inputs}; do
        i=$((i + 1))
        ln -s "$p" "$out/$i-''${p##*/}"
      done
    ''
  ];
}
