"""Segment HTTP Tracking API routes (/v1/track, /v1/identify, …, /v1/batch)."""

from fastapi import APIRouter

router = APIRouter()
