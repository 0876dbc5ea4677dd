"""Transport-agnostic core: turns a Request into a Reply; imports nothing of Telegram or a database driver."""
