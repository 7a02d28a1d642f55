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
    glibc = mk "glibc-2.${toString version}" 1000000 [ ];
    hello = mk "hello-${toString version}.0" 2000000 [ self.glibc ];
    world = mk "world-${toString version}.0" 2000000 [ self.glibc ];
    tools = mk "tools-${toString version}.0" 2000000 [ self.glibc ];
    editor = mk "editor-${toString version}.0" 2000000 [ self.glibc ];
    # A NixOS top-level: links to the packages, and a switch-to-configuration that logs
    # each call to $STANDIN_SWITCH_LOG (the tests read it) instead of touching the machine,
    # and fails the call $STANDIN_SWITCH_FAIL_AT names.
    makeSystem = name: paths: derivation {
      inherit name system;
      builder = "/bin/sh";
      args = [ "-c" ''
        PATH=/usr/bin:/bin
        mkdir -p $out/bin $out/sw
        for p in ${toString paths}; do ln -s $p $out/sw/; done
        printf '#!/bin/sh\necho "%s $1" >> "''${STANDIN_SWITCH_LOG:-/dev/null}"\n' $out \
          > $out/bin/switch-to-configuration
        # ... and the packages the system links to $STANDIN_SWITCH_SW_LOG, a line a call.
        printf 'echo %s/sw/* >> "''${STANDIN_SWITCH_SW_LOG:-/dev/null}"\n' $out \
          >> $out/bin/switch-to-configuration
        # $STANDIN_SWITCH_FAIL_AT=N: the Nth call (counted in the log) fails, as a broken
        # activation would.
        printf '%s\n' \
          'n=$(wc -l < "''${STANDIN_SWITCH_LOG:-/dev/null}")' \
          'if [ -n "$STANDIN_SWITCH_FAIL_AT" ] && [ "$n" -eq "$STANDIN_SWITCH_FAIL_AT" ]; then' \
          '  echo "error: activation failed (stand-in)" >&2; exit 1' \
          'fi' >> $out/bin/switch-to-configuration
        chmod +x $out/bin/switch-to-configuration
      '' ];
    };
  };
  apply = acc: overlay: self: let prev = acc self; in prev // overlay self prev;
  fix = f: let x = f x; in x;
in
fix (builtins.foldl' apply base overlays)
