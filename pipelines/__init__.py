"""Pipeline wiring (``@dsl.pipeline`` only), the local runner, and the compiler entry point."""
