"""Rules: the rule language, rule sets and the decision policy."""
