"""Speaker names saved with a job (issue 21, `PATCH /v1/jobs/{id}/speakers`): written into the
speaker list of the stored transcript and of the job record, so that every later download (the
json too), the job and a reload of the page show them. Labels never change, and the events and
webhooks already sent are not sent again.

Both are written in one transaction under a WATCH of both keys: a job deleted meanwhile is
never brought back, and two requests naming speakers at once each apply in full, one after
the other. The transcript keeps its time to live.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import redis

from shared.schemas import Speaker, Transcript
from shared.state.jobs import JobStore
from shared.turns import with_names


def save_names(store: JobStore, job_id: str, names: Mapping[str, str | None]
               ) -> list[Speaker] | None:
    """Name the job's speakers as `names` says ({label: name}; None clears a name): the
    speakers as saved, or None when the job or its transcript is gone."""
    job_key, transcript_key = store.job_key(job_id), store.transcript_key(job_id)
    with store.redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(job_key, transcript_key)
                raw = pipe.get(transcript_key)
                if raw is None or not pipe.exists(job_key):
                    return None
                transcript = Transcript.model_validate_json(raw)  # type: ignore[arg-type]
                speakers = with_names(transcript.speakers or [], names)
                named = transcript.model_copy(update={"speakers": speakers})
                pipe.multi()
                pipe.set(transcript_key, named.model_dump_json(), keepttl=True)
                pipe.hset(job_key, "speakers",
                          json.dumps([s.model_dump(mode="json") for s in speakers]))
                pipe.execute()
                return speakers
            except redis.WatchError:  # written or deleted meanwhile: read again
                continue
