"""The Slack front end: Block Kit rendering, the bolt app (slash command, DMs, mentions, buttons), sending, admins."""
