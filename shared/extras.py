"""What a job may carry besides its transcription options: a webhook, tags, its retention.

Read from the same form (or JSON body) as the options, and stored as fields of the job record.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import InvalidRequest

FIELDS = ("webhook_url", "metadata", "retention_seconds")
MAX_METADATA_KEYS = 32
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_METADATA_BYTES = 4096

MetadataValue = str | int | float | bool | None


class JobExtras(BaseModel):
    model_config = ConfigDict(extra="forbid")

    webhook_url: str | None = Field(
        default=None, max_length=2048,
        description="An http(s) URL that gets `job.completed` or `job.failed`, signed.",
    )
    metadata: dict[str, MetadataValue] | None = Field(
        default=None,
        description=f"A flat JSON object of your own tags: at most {MAX_METADATA_KEYS} keys "
        f"of up to {MAX_METADATA_KEY_CHARS} characters, string values of up to "
        f"{MAX_METADATA_VALUE_CHARS}, {MAX_METADATA_BYTES} bytes as JSON.",
    )
    retention_seconds: int | None = Field(
        default=None, ge=1,
        description="Keep the finished job and transcript this long (at most the server's "
        "`VERBATIM_RESULT_TTL_SECONDS`).",
    )

    @field_validator("metadata", mode="before")
    @classmethod
    def _json_text(cls, value: object) -> object:
        """A form sends the object as JSON text."""
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"metadata is not valid JSON ({exc.msg})") from None
            except ValueError:  # an integer past Python's 4300 digits
                raise ValueError("metadata is not valid JSON (a number too long to read)") from None
        return value

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict[str, MetadataValue] | None) -> dict[str, MetadataValue] | None:
        if value is None:
            return None
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"metadata has more than {MAX_METADATA_KEYS} keys")
        for key, item in value.items():
            if not key or len(key) > MAX_METADATA_KEY_CHARS:
                raise ValueError(f"metadata keys have 1 to {MAX_METADATA_KEY_CHARS} characters")
            if isinstance(item, str) and len(item) > MAX_METADATA_VALUE_CHARS:
                raise ValueError(f"metadata[{key!r}] exceeds {MAX_METADATA_VALUE_CHARS} chars")
        if len(json.dumps(value).encode()) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata exceeds {MAX_METADATA_BYTES} bytes as JSON")
        return value

    def check_retention(self, limit: int) -> None:
        if self.retention_seconds is not None and self.retention_seconds > limit:
            raise InvalidRequest(
                f"retention_seconds: at most {limit} (the server's result TTL)",
                param="retention_seconds",
            )

    def record(self) -> dict[str, Any]:
        """The job record's fields (unset ones left out)."""
        return self.model_dump(exclude_none=True)


def parse_extras(values: dict[str, Any], retention_limit: int) -> JobExtras:
    """The extras among `values` (which keep only the other fields); 422 when one is bad."""
    mine = {name: values.pop(name) for name in FIELDS if name in values}
    mine = {name: value for name, value in mine.items() if value != ""}
    try:
        extras = JobExtras.model_validate(mine)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "form"
        raise InvalidRequest(f"{name}: {error['msg']}", param=name) from None
    extras.check_retention(retention_limit)
    return extras
