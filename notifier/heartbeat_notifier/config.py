"""The notifier's view of the one settings model, resolved like the rest of the stack: the
environment first, then the secrets generated on first run (var/secrets.env)."""

from __future__ import annotations

from heartbeat_contract.settings import Settings, read_env_file


class NotifierConfig(Settings):
    """The settings, plus the addresses derived from them."""

    @property
    def dsn(self) -> str:
        """The notifier's own least-privilege role (heartbeat_notifying's grants only)."""
        return (
            f"host={self.pg_host} port={self.pg_port} dbname={self.pg_database} "
            f"user={self.notifier_user} password={self.notifier_password} connect_timeout=5"
        )

    @property
    def listen_address(self) -> tuple[str, int]:
        host, port = self.notifier_listen.rsplit(":", 1)
        return host.strip("[]"), int(port)

    @property
    def ack_base_url(self) -> str:
        host, port = self.listen_address
        return f"http://{host}:{port}"


def load() -> NotifierConfig:
    settings = Settings()  # only to find var_dir
    try:
        stored = read_env_file(settings.var_dir / "secrets.env")
    except PermissionError:  # a container's root-only file: the entrypoint exported it already
        stored = {}
    return NotifierConfig.resolve(stored)
