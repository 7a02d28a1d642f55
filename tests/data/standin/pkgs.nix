# A stand-in for nixpkgs at revision `version`: a fixed point of packages with overlays,
# built with /bin/sh so that Debian's Nix can realise it without a real nixpkgs.
version:
{ system ? builtins.currentSystem, overlays ? [ ], config ? { } }:
let
  mk = name: size: deps: derivation {
    inherit name system;
    builder = "/bin/sh";
    args = [ "-c" ''
      PATH=/usr/bin:/bin
      echo ${toString deps} > $out
      head -c ${toString size} /dev/zero >> $out
    '' ];
  };
  base = self: {
    inherit system;
    lib = import ./lib.nix;
    glibc = mk "glibc-2.${toString version}" 3000 [ ];
    hello = mk "hello-${toString version}.0" 2000 [ self.glibc ];
    world = mk "world-${toString version}.0" 2000 [ self.glibc ];
    writeLinks = name: paths: mk name 10 paths;
  };
  apply = acc: overlay: self: let prev = acc self; in prev // overlay self prev;
  fix = f: let x = f x; in x;
in
fix (builtins.foldl' apply base overlays)
