"""Models the platform serves: provisioned base models and the variants users create."""
