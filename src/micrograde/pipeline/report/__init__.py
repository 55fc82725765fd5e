"""The assess report: page, galleries, sections, plots, out-of-distribution warnings, outputs."""
