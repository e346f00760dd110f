"""The Redis keys the platform writes, as the exporters read them (docs/data-contract.md)."""

from __future__ import annotations


def last_tick(provider: str) -> str:
    """Unix time of the provider's newest tick (the exporters' market-data age)."""
    return f"md:last_tick:{provider}"


def ticks(provider: str) -> str:
    """Hash of symbol -> "price|timestamp" of the provider's newest ticks."""
    return f"md:ticks:{provider}"


def order_queue(priority: str) -> str:
    """List of order ids waiting for execution, oldest first (the order-queue depth)."""
    return f"orders:queue:{priority}"


def active_signals(strategy: str) -> str:
    """Set of the strategy's active signal ids (the active-signals gauge)."""
    return f"signals:active:{strategy}"
