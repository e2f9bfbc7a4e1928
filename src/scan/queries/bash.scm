; Candidate write sites in bash/sh. Rust (src/scan/bash.rs) gives them meaning.
(file_redirect) @redirect
(heredoc_redirect) @heredoc
((command name: (command_name) @name) @command
  (#match? @name "^(tee|sed|mv|cp|touch|truncate|rm|rmdir|unlink|sudo|command|env|mkdir|flock|lockf|concur|sqlite3|bash|sh|trap|eval|python3?|node|nc|socat|set|exec|ln)$"))
