"""A tiny Flower app for the loopback deployment test (tests/test_fl_deployment.py)."""
