"""The pure core of budget-solve: closures, components, the disk model, planners, validation."""
