"""What-if studies: the YAML schema, scenarios, and capacity plans for fleets."""
