"""From a scale's summary tables to its claims, figures, tables and numbers."""
