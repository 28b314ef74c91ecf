"""Fixtures for a real S3 server on 127.0.0.1 (moto's ThreadedMotoServer). Filled in by the storage tests."""
