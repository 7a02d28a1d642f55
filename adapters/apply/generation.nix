# An intermediate generation: a directory of links to the chosen component paths.
#
# `pathsFile` names a file holding a JSON list of store paths (a file, because thousands
# of paths overflow a command line). `builtins.storePath` makes each one an input of the
# derivation, so it is substituted when missing and becomes a reference of the output:
# the generation's closure is exactly the union of the chosen components' closures.
{ name, pathsFile }:
let
  inputs = map builtins.storePath (builtins.fromJSON (builtins.readFile pathsFile));
in
derivation {
  inherit name;
  system = builtins.currentSystem;
  builder = "/bin/sh";
  # The list reaches the builder as a file too: one argument or variable is capped at
  # 128 KiB, about 2,000 store paths.
  links = inputs;
  passAsFile = [ "links" ];
  args = [
    "-c"
    ''
      set -e
      PATH=/usr/bin:/bin
      mkdir "$out"
      i=0
      read -r all < "$linksPath" || true
      for p in $all; do
        i=$((i + 1))
        ln -s "$p" "$out/$i-''${p##*/}"
      done
    ''
  ];
}
