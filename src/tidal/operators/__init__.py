"""Physical operators, one module per family; all share :class:`tidal.operators.base.Operator`."""
