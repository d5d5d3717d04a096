"""Plumbing every service shares: its settings, its logging, its runtime tuning."""

from .settings import ServiceSettings

__all__ = ["ServiceSettings"]
