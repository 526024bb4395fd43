"""The languages the synthetic speech covers: code, espeak-ng voice, script and display name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    """One spoken language. `code` is ISO 639-1; `espeak_voice` is the espeak-ng voice name."""

    code: str
    espeak_voice: str
    script: str
    name: str
    spaced: bool = True  # words are separated by spaces in this script


LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in (
        Language("en", "en-us", "Latin", "English"),
        Language("es", "es", "Latin", "Spanish"),
        Language("fr", "fr", "Latin", "French"),
        Language("de", "de", "Latin", "German"),
        Language("it", "it", "Latin", "Italian"),
        Language("pt", "pt-br", "Latin", "Portuguese (Brazil)"),
        Language("nl", "nl", "Latin", "Dutch"),
        Language("pl", "pl", "Latin", "Polish"),
        Language("tr", "tr", "Latin", "Turkish"),
        Language("vi", "vi", "Latin", "Vietnamese"),
        Language("id", "id", "Latin", "Indonesian"),
        Language("sw", "sw", "Latin", "Swahili"),
        Language("ru", "ru", "Cyrillic", "Russian"),
        Language("el", "el", "Greek", "Greek"),
        Language("ar", "ar", "Arabic", "Arabic"),
        Language("hi", "hi", "Devanagari", "Hindi"),
        Language("zh", "cmn", "Han", "Mandarin Chinese", spaced=False),
        Language("ja", "ja", "Kana", "Japanese", spaced=False),
        Language("ko", "ko", "Hangul", "Korean"),
    )
}


def get_language(code: str) -> Language:
    """The language with ISO code `code`; ValueError if it is not in LANGUAGES."""
    try:
        return LANGUAGES[code]
    except (KeyError, TypeError):
        raise ValueError(f"unknown language {code!r}; known: {', '.join(sorted(LANGUAGES))}") from None
