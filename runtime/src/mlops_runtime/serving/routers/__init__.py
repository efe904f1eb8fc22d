"""The service's routers, one per concern: prediction, feedback, operations."""
