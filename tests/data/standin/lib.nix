{
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  # Enough of nixpkgs' lib for an option declaration; the stand-in module system reads
  # the options it knows by name.
  mkOption = attrs: attrs;
  types = { str = "str"; listOf = t: "listOf ${t}"; };
}
