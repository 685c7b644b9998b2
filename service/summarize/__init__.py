"""The summarizer service: worker processes and the gateway that routes /v1/summarize to them."""
