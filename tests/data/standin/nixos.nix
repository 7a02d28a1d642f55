# A stand-in for <nixpkgs/nixos> of the nixpkgs at `nixpkgs`: just enough of the module
# system for budget-solve's generated modules: `imports`, `nixpkgs.overlays`,
# `environment.systemPackages`, `budgetSolve.nonVital`, `extendModules`.
nixpkgs:
{ configuration ? import <nixos-config>, system ? builtins.currentSystem }:
let
  eval = base:
    let
      args = { inherit config pkgs; lib = pkgs.lib; };
      collect = m:
        if builtins.isPath m || builtins.isString m then collect (import m)
        else if builtins.isFunction m then collect (m args)
        else [ m ] ++ builtins.concatMap collect (m.imports or [ ]);
      all = builtins.concatMap collect base;
      overlays = builtins.concatMap (m: m.nixpkgs.overlays or [ ]) all;
      config = {
        environment.systemPackages = builtins.concatMap (m: m.environment.systemPackages or [ ]) all;
        # budget-solve's own option (adapters/apply/nixos-module.nix), when imported.
        budgetSolve.nonVital = builtins.concatMap (m: m.budgetSolve.nonVital or [ ]) all;
        system.build.toplevel = pkgs.makeSystem "nixos-system-box" config.environment.systemPackages;
      };
      pkgs = import nixpkgs { inherit system overlays; };
    in {
      inherit config pkgs;
      system = config.system.build.toplevel;
      extendModules = { modules ? [ ] }: eval (base ++ modules);
    };
in
eval [ configuration ]
