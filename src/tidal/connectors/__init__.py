"""Sources and sinks, one module per external system; users import them through
:mod:`tidal.sources` and :mod:`tidal.sinks`."""
