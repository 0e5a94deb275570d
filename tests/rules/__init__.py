"""Tests of the rule language, rule sets, detectors and the decision policy."""
