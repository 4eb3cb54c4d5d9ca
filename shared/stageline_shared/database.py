"""Engine construction from DATABASE_URL, accepting plain postgres:// URLs too."""

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def async_url(url: str) -> str:
    """Normalise a Postgres URL to the asyncpg driver SQLAlchemy needs."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {url.split(':', 1)[0]}://…")


def make_engine(
    url: str, pool_size: int = 5, server_settings: dict[str, str] | None = None
) -> AsyncEngine:
    """A pooled engine; `server_settings` are Postgres settings for every session it opens."""
    return create_async_engine(
        async_url(url), pool_size=pool_size, pool_pre_ping=True,
        connect_args={"server_settings": server_settings or {}},
    )
