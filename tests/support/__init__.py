"""Builders, fakes and real-component fixtures shared by the whole test suite."""
