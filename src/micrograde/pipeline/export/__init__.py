"""Selection files that RELION (STAR) and cryoSPARC (.cs/.csg) import."""
