"""The micrograph simulator: physics, parameters, label rules, writing collections."""
