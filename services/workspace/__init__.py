"""The team workspace: server-rendered pages for coordinators, team members, officers and
auditors, over the other services' HTTP APIs with the signed-in person's own token."""
