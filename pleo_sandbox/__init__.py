"""A local, faithful Pleo Export API for tests and for trying the product. Never imported by exports."""
