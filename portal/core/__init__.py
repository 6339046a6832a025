"""Cross-cutting pieces every domain uses: database base, access scope, audit, mail, i18n."""
