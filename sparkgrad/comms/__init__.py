"""Collectives over real transports (threads or TCP), an NCCL-like API and a cost model."""
