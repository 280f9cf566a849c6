"""What a transcript is rendered into: the download formats and the subtitle cues."""
