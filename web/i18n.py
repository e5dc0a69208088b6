"""The ack pages' strings in the officers' languages, and Babel for dates and durations.

A small catalogue (a handful of sentences) rather than gettext files: it is read in one
place, and a test checks that every language has every key.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime
from babel.lists import format_list
from babel.units import format_unit

LANGUAGES = ("nl", "fr", "de", "lb", "en")
LANGUAGE_NAMES = {"nl": "Nederlands", "fr": "Français", "de": "Deutsch", "lb": "Lëtzebuergesch", "en": "English"}

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "title": "Confirm receipt",
        "intro": "This is a communication test. Please confirm that this message reached you.",
        "organisation": "Organisation",
        "contact": "Contact point",
        "channel": "Channel",
        "sent": "Sent",
        "deadline": "Please confirm before",
        "name_label": "Your name (optional)",
        "button": "Confirm",
        "done_title": "Thank you: receipt confirmed",
        "done_text": "Your confirmation was recorded at {when}.",
        "response": "Response time: {duration}.",
        "late": "The deadline had passed; your confirmation is recorded as late.",
        "already_title": "Already confirmed",
        "already_text": "This message was already confirmed at {when}. Nothing more to do.",
        "expired_title": "Link expired",
        "expired_text": "This link is no longer valid. If the test is still running, reply to the e-mail instead.",
        "unknown_title": "Link not recognised",
        "unknown_text": "This link is not known. Check that you opened it completely from the e-mail.",
        "malformed_title": "Incomplete link",
        "malformed_text": "This link is incomplete or damaged. Open it again from the e-mail, or reply to the e-mail.",
        "csrf_title": "Please try again",
        "csrf_text": "This page is too old or the form did not come from it. Open the link again and press the button.",
        "again": "Open the confirmation page again",
        "ratelimited_title": "Too many requests",
        "ratelimited_text": "Too many requests came from your address. Wait a minute and try again.",
        "notfound_title": "Page not found",
        "notfound_text": "There is no page at this address.",
        "error_title": "Something went wrong",
        "error_text": "The confirmation could not be processed. Please try again in a moment, or reply to the e-mail.",
        "footer": "commtest: communication tests between crisis centres",
        "ch_email": "E-mail", "ch_voice": "Telephone", "ch_sms": "SMS", "ch_video": "Video",
        "ch_cap": "System link (CAP)", "ch_manual": "Manual",
    },
    "nl": {
        "title": "Ontvangst bevestigen",
        "intro": "Dit is een communicatietest. Bevestig alstublieft dat dit bericht u heeft bereikt.",
        "organisation": "Organisatie",
        "contact": "Aanspreekpunt",
        "channel": "Kanaal",
        "sent": "Verzonden",
        "deadline": "Graag bevestigen vóór",
        "name_label": "Uw naam (optioneel)",
        "button": "Bevestigen",
        "done_title": "Dank u: ontvangst bevestigd",
        "done_text": "Uw bevestiging is geregistreerd op {when}.",
        "response": "Reactietijd: {duration}.",
        "late": "De termijn was verstreken; uw bevestiging is als laat geregistreerd.",
        "already_title": "Al bevestigd",
        "already_text": "Dit bericht is al bevestigd op {when}. U hoeft niets meer te doen.",
        "expired_title": "Link verlopen",
        "expired_text": "Deze link is niet meer geldig. Loopt de test nog, beantwoord dan de e-mail.",
        "unknown_title": "Link niet herkend",
        "unknown_text": "Deze link is onbekend. Controleer of u hem volledig vanuit de e-mail hebt geopend.",
        "malformed_title": "Onvolledige link",
        "malformed_text": "Deze link is onvolledig of beschadigd. Open hem opnieuw vanuit de e-mail, of beantwoord de e-mail.",
        "csrf_title": "Probeer het opnieuw",
        "csrf_text": "Deze pagina is te oud of het formulier kwam niet van deze pagina. Open de link opnieuw en druk op de knop.",
        "again": "De bevestigingspagina opnieuw openen",
        "ratelimited_title": "Te veel verzoeken",
        "ratelimited_text": "Er kwamen te veel verzoeken van uw adres. Wacht een minuut en probeer het opnieuw.",
        "notfound_title": "Pagina niet gevonden",
        "notfound_text": "Op dit adres staat geen pagina.",
        "error_title": "Er ging iets mis",
        "error_text": "De bevestiging kon niet worden verwerkt. Probeer het zo opnieuw, of beantwoord de e-mail.",
        "footer": "commtest: communicatietests tussen crisiscentra",
        "ch_email": "E-mail", "ch_voice": "Telefoon", "ch_sms": "Sms", "ch_video": "Video",
        "ch_cap": "Systeemkoppeling (CAP)", "ch_manual": "Handmatig",
    },
    "fr": {
        "title": "Confirmer la réception",
        "intro": "Ceci est un test de communication. Veuillez confirmer que ce message vous est parvenu.",
        "organisation": "Organisation",
        "contact": "Point de contact",
        "channel": "Canal",
        "sent": "Envoyé",
        "deadline": "Merci de confirmer avant",
        "name_label": "Votre nom (facultatif)",
        "button": "Confirmer",
        "done_title": "Merci : réception confirmée",
        "done_text": "Votre confirmation a été enregistrée le {when}.",
        "response": "Temps de réponse : {duration}.",
        "late": "Le délai était dépassé ; votre confirmation est enregistrée comme tardive.",
        "already_title": "Déjà confirmé",
        "already_text": "Ce message a déjà été confirmé le {when}. Vous n’avez plus rien à faire.",
        "expired_title": "Lien expiré",
        "expired_text": "Ce lien n’est plus valable. Si le test est encore en cours, répondez plutôt à l’e-mail.",
        "unknown_title": "Lien non reconnu",
        "unknown_text": "Ce lien est inconnu. Vérifiez que vous l’avez ouvert en entier depuis l’e-mail.",
        "malformed_title": "Lien incomplet",
        "malformed_text": "Ce lien est incomplet ou endommagé. Ouvrez-le à nouveau depuis l’e-mail, ou répondez à l’e-mail.",
        "csrf_title": "Veuillez réessayer",
        "csrf_text": "Cette page est trop ancienne ou le formulaire ne vient pas d’elle. Rouvrez le lien et appuyez sur le bouton.",
        "again": "Rouvrir la page de confirmation",
        "ratelimited_title": "Trop de requêtes",
        "ratelimited_text": "Trop de requêtes sont venues de votre adresse. Attendez une minute et réessayez.",
        "notfound_title": "Page introuvable",
        "notfound_text": "Il n’y a pas de page à cette adresse.",
        "error_title": "Une erreur s’est produite",
        "error_text": "La confirmation n’a pas pu être traitée. Réessayez dans un instant, ou répondez à l’e-mail.",
        "footer": "commtest : tests de communication entre centres de crise",
        "ch_email": "E-mail", "ch_voice": "Téléphone", "ch_sms": "SMS", "ch_video": "Vidéo",
        "ch_cap": "Liaison système (CAP)", "ch_manual": "Manuel",
    },
    "de": {
        "title": "Empfang bestätigen",
        "intro": "Dies ist ein Kommunikationstest. Bitte bestätigen Sie, dass diese Nachricht Sie erreicht hat.",
        "organisation": "Organisation",
        "contact": "Kontaktstelle",
        "channel": "Kanal",
        "sent": "Gesendet",
        "deadline": "Bitte bestätigen bis",
        "name_label": "Ihr Name (freiwillig)",
        "button": "Bestätigen",
        "done_title": "Danke: Empfang bestätigt",
        "done_text": "Ihre Bestätigung wurde am {when} erfasst.",
        "response": "Reaktionszeit: {duration}.",
        "late": "Die Frist war abgelaufen; Ihre Bestätigung wird als verspätet erfasst.",
        "already_title": "Bereits bestätigt",
        "already_text": "Diese Nachricht wurde bereits am {when} bestätigt. Sie müssen nichts mehr tun.",
        "expired_title": "Link abgelaufen",
        "expired_text": "Dieser Link ist nicht mehr gültig. Läuft der Test noch, antworten Sie bitte auf die E-Mail.",
        "unknown_title": "Link nicht erkannt",
        "unknown_text": "Dieser Link ist unbekannt. Prüfen Sie, ob Sie ihn vollständig aus der E-Mail geöffnet haben.",
        "malformed_title": "Unvollständiger Link",
        "malformed_text": "Dieser Link ist unvollständig oder beschädigt. Öffnen Sie ihn erneut aus der E-Mail oder antworten Sie auf die E-Mail.",
        "csrf_title": "Bitte erneut versuchen",
        "csrf_text": "Diese Seite ist zu alt oder das Formular stammt nicht von ihr. Öffnen Sie den Link erneut und drücken Sie die Schaltfläche.",
        "again": "Bestätigungsseite erneut öffnen",
        "ratelimited_title": "Zu viele Anfragen",
        "ratelimited_text": "Von Ihrer Adresse kamen zu viele Anfragen. Warten Sie eine Minute und versuchen Sie es erneut.",
        "notfound_title": "Seite nicht gefunden",
        "notfound_text": "Unter dieser Adresse gibt es keine Seite.",
        "error_title": "Etwas ist schiefgegangen",
        "error_text": "Die Bestätigung konnte nicht verarbeitet werden. Versuchen Sie es gleich noch einmal oder antworten Sie auf die E-Mail.",
        "footer": "commtest: Kommunikationstests zwischen Krisenzentren",
        "ch_email": "E-Mail", "ch_voice": "Telefon", "ch_sms": "SMS", "ch_video": "Video",
        "ch_cap": "Systemverbindung (CAP)", "ch_manual": "Manuell",
    },
    "lb": {
        "title": "Empfang bestätegen",
        "intro": "Dëst ass e Kommunikatiounstest. Bestätegt w.e.g., datt dës Noriicht Iech erreecht huet.",
        "organisation": "Organisatioun",
        "contact": "Kontaktpunkt",
        "channel": "Kanal",
        "sent": "Geschéckt",
        "deadline": "W.e.g. bestätegen bis",
        "name_label": "Ären Numm (fräiwëlleg)",
        "button": "Bestätegen",
        "done_title": "Merci: Empfang bestätegt",
        "done_text": "Är Bestätegung gouf den {when} registréiert.",
        "response": "Äntwertzäit: {duration}.",
        "late": "D’Frist war ofgelaf; Är Bestätegung gëtt als ze spéit registréiert.",
        "already_title": "Scho bestätegt",
        "already_text": "Dës Noriicht gouf schonn den {when} bestätegt. Dir musst näischt méi maachen.",
        "expired_title": "Link ofgelaf",
        "expired_text": "Dëse Link ass net méi gëlteg. Leeft den Test nach, äntwert w.e.g. op d’E-Mail.",
        "unknown_title": "Link net erkannt",
        "unknown_text": "Dëse Link ass onbekannt. Kuckt, ob Dir e komplett aus der E-Mail opgemaach hutt.",
        "malformed_title": "Onvollstännege Link",
        "malformed_text": "Dëse Link ass onvollstänneg oder beschiedegt. Maacht e nach eng Kéier aus der E-Mail op, oder äntwert op d’E-Mail.",
        "csrf_title": "Probéiert w.e.g. nach eng Kéier",
        "csrf_text": "Dës Säit ass ze al oder de Formulaire koum net vun hir. Maacht de Link nach eng Kéier op an dréckt op de Knäppchen.",
        "again": "D’Bestätegungssäit nach eng Kéier opmaachen",
        "ratelimited_title": "Ze vill Ufroen",
        "ratelimited_text": "Vun Ärer Adress koumen ze vill Ufroen. Waart eng Minutt a probéiert nach eng Kéier.",
        "notfound_title": "Säit net fonnt",
        "notfound_text": "Op dëser Adress gëtt et keng Säit.",
        "error_title": "Eppes ass schifgaang",
        "error_text": "D’Bestätegung konnt net veraarbecht ginn. Probéiert et gläich nach eng Kéier, oder äntwert op d’E-Mail.",
        "footer": "commtest: Kommunikatiounstester tëscht Krisenzentren",
        "ch_email": "E-Mail", "ch_voice": "Telefon", "ch_sms": "SMS", "ch_video": "Video",
        "ch_cap": "Systemverbindung (CAP)", "ch_manual": "Manuell",
    },
}


def pick_language(
    requested: str | None, preferred: str | Sequence[str] | None, fallback: str = "en"
) -> str:
    """``?lang=`` when the pages have it, else the first of ``preferred`` they have (the
    ping's language, then the contact point's other languages, then its organisation's),
    else ``fallback``, else English."""
    wanted = [preferred] if isinstance(preferred, str) or preferred is None else list(preferred)
    for tag in (requested, *wanted, fallback):
        base = (tag or "").split("-")[0].split("_")[0].lower()
        if base in CATALOGUE:
            return base
    return "en"


def texts(language: str) -> dict[str, str]:
    return CATALOGUE.get(language, CATALOGUE["en"])


def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language)
    except (ValueError, LookupError):
        return Locale.parse("en")


def format_when(at: datetime | None, zone: str, language: str) -> str:
    """A moment in the contact's local time, e.g. ``14 apr 2026 10:15 CEST``."""
    if at is None:
        return "—"
    tz = ZoneInfo(zone)
    local = at.astimezone(tz)
    return f"{format_datetime(local, 'medium', tzinfo=tz, locale=_locale(language))} {local.tzname() or zone}"


def format_duration(ms: int | None, language: str) -> str:
    """``2 minutes, 35 seconds`` (in the language), to the second."""
    if ms is None:
        return "—"
    locale = _locale(language)
    seconds = round(ms / 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(format_unit(hours, "duration-hour", length="long", locale=locale))
    if minutes:
        parts.append(format_unit(minutes, "duration-minute", length="long", locale=locale))
    if secs or not parts:
        parts.append(format_unit(secs, "duration-second", length="long", locale=locale))
    return format_list(parts, style="unit", locale=locale)


# --- console (staff pages): nl, fr, de, en; the ack catalogue above supplies the shared strings ---
CONSOLE_LANGUAGES = ("nl", "fr", "de", "en")

CONSOLE_CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "console": "Console",
        "login_title": "Sign in to the console",
        "username": "User name",
        "password": "Password",
        "login_button": "Sign in",
        "login_failed": "Wrong user name or password, or the account is deactivated.",
        "logout": "Sign out",
        "signed_in_as": "Signed in as {user} ({role})",
        "monthly_title": "Monthly reports",
        "month": "Month",
        "status": "Status",
        "status_draft": "Draft",
        "status_signed": "Signed",
        "signed_by": "Signed by",
        "signed_at": "Signed at",
        "generated_at": "Generated",
        "no_reports": "No monthly report yet.",
        "open": "Open",
        "generate_title": "Generate a draft",
        "generate_label": "Month (YYYY-MM)",
        "generate_button": "Generate",
        "bad_month": "“{month}” is not a month: write YYYY-MM, e.g. 2026-03.",
        "report_title": "Monthly report {month}",
        "draft_note": "Draft generated at {when}. It is recomputed until a reviewer signs it off.",
        "signed_note": "Signed by {by} at {when}.",
        "comment": "Comment",
        "sign_title": "Sign off",
        "sign_intro": "Signing freezes these figures: they will not change any more, and your name and the time are recorded.",
        "comment_label": "Comment (required)",
        "sign_button": "Sign off this report",
        "comment_required": "Write a comment before signing. Nothing was recorded.",
        "printable": "Printable version",
        "back": "Back to the monthly reports",
        "noreport_title": "No report for this month",
        "noreport_text": "There is no report for {month} yet. A coordinator, reviewer or admin can generate a draft from the list.",
        "forbidden_title": "Not allowed",
        "forbidden_text": "Your role ({role}) does not allow this: only {roles} may {action}. Nothing was recorded.",
        "action_sign": "sign a monthly report",
        "action_generate": "generate a monthly report",
        "signed_already_title": "Already signed",
        "signed_already_text": "The report of {month} was signed by {by} at {when}. A signed report is frozen and cannot be signed again. Nothing was recorded.",
        "changed_title": "The figures have changed",
        "changed_text": "The figures of {month} changed since you opened the page (new events arrived). Read them again before signing. Nothing was recorded.",
        "console_csrf_title": "Please try again",
        "console_csrf_text": "This form is too old or did not come from the console. Open the page again and submit it from there. Nothing was recorded.",
        "login_required_title": "Sign-in required",
        "login_required_text": "Sign in to the console first. Nothing was recorded.",
        "sign_in_link": "Go to the sign-in page",
        "role_viewer": "viewer", "role_coordinator": "coordinator", "role_reviewer": "reviewer", "role_admin": "admin",
        "or": "or",
    },
    "nl": {
        "console": "Console",
        "login_title": "Aanmelden bij de console",
        "username": "Gebruikersnaam",
        "password": "Wachtwoord",
        "login_button": "Aanmelden",
        "login_failed": "Verkeerde gebruikersnaam of wachtwoord, of het account is gedeactiveerd.",
        "logout": "Afmelden",
        "signed_in_as": "Aangemeld als {user} ({role})",
        "monthly_title": "Maandrapporten",
        "month": "Maand",
        "status": "Status",
        "status_draft": "Ontwerp",
        "status_signed": "Ondertekend",
        "signed_by": "Ondertekend door",
        "signed_at": "Ondertekend op",
        "generated_at": "Opgesteld",
        "no_reports": "Nog geen maandrapport.",
        "open": "Openen",
        "generate_title": "Een ontwerp opstellen",
        "generate_label": "Maand (JJJJ-MM)",
        "generate_button": "Opstellen",
        "bad_month": "“{month}” is geen maand: schrijf JJJJ-MM, bv. 2026-03.",
        "report_title": "Maandrapport {month}",
        "draft_note": "Ontwerp opgesteld op {when}. Het wordt herberekend tot een reviewer het ondertekent.",
        "signed_note": "Ondertekend door {by} op {when}.",
        "comment": "Opmerking",
        "sign_title": "Ondertekenen",
        "sign_intro": "Door te ondertekenen bevriest u deze cijfers: ze veranderen niet meer, en uw naam en het tijdstip worden vastgelegd.",
        "comment_label": "Opmerking (verplicht)",
        "sign_button": "Dit rapport ondertekenen",
        "comment_required": "Schrijf een opmerking voordat u ondertekent. Er is niets vastgelegd.",
        "printable": "Afdrukbare versie",
        "back": "Terug naar de maandrapporten",
        "noreport_title": "Geen rapport voor deze maand",
        "noreport_text": "Er is nog geen rapport voor {month}. Een coördinator, reviewer of beheerder kan vanuit de lijst een ontwerp opstellen.",
        "forbidden_title": "Niet toegestaan",
        "forbidden_text": "Uw rol ({role}) staat dit niet toe: alleen een {roles} mag {action}. Er is niets vastgelegd.",
        "action_sign": "een maandrapport ondertekenen",
        "action_generate": "een maandrapport opstellen",
        "signed_already_title": "Al ondertekend",
        "signed_already_text": "Het rapport van {month} is ondertekend door {by} op {when}. Een ondertekend rapport is bevroren en kan niet opnieuw worden ondertekend. Er is niets vastgelegd.",
        "changed_title": "De cijfers zijn gewijzigd",
        "changed_text": "De cijfers van {month} zijn gewijzigd sinds u de pagina opende (er kwamen nieuwe gebeurtenissen binnen). Lees ze opnieuw voordat u ondertekent. Er is niets vastgelegd.",
        "console_csrf_title": "Probeer het opnieuw",
        "console_csrf_text": "Dit formulier is te oud of kwam niet van de console. Open de pagina opnieuw en verstuur het van daaruit. Er is niets vastgelegd.",
        "login_required_title": "Aanmelden vereist",
        "login_required_text": "Meld u eerst aan bij de console. Er is niets vastgelegd.",
        "sign_in_link": "Naar de aanmeldpagina",
        "role_viewer": "lezer", "role_coordinator": "coördinator", "role_reviewer": "reviewer", "role_admin": "beheerder",
        "or": "of",
    },
    "fr": {
        "console": "Console",
        "login_title": "Connexion à la console",
        "username": "Nom d’utilisateur",
        "password": "Mot de passe",
        "login_button": "Se connecter",
        "login_failed": "Nom d’utilisateur ou mot de passe incorrect, ou compte désactivé.",
        "logout": "Se déconnecter",
        "signed_in_as": "Connecté en tant que {user} ({role})",
        "monthly_title": "Rapports mensuels",
        "month": "Mois",
        "status": "Statut",
        "status_draft": "Projet",
        "status_signed": "Signé",
        "signed_by": "Signé par",
        "signed_at": "Signé le",
        "generated_at": "Établi",
        "no_reports": "Aucun rapport mensuel pour l’instant.",
        "open": "Ouvrir",
        "generate_title": "Établir un projet",
        "generate_label": "Mois (AAAA-MM)",
        "generate_button": "Établir",
        "bad_month": "« {month} » n’est pas un mois : écrivez AAAA-MM, p. ex. 2026-03.",
        "report_title": "Rapport mensuel {month}",
        "draft_note": "Projet établi le {when}. Il est recalculé jusqu’à ce qu’un réviseur le signe.",
        "signed_note": "Signé par {by} le {when}.",
        "comment": "Commentaire",
        "sign_title": "Signer",
        "sign_intro": "En signant, vous figez ces chiffres : ils ne changeront plus, et votre nom ainsi que l’heure sont enregistrés.",
        "comment_label": "Commentaire (obligatoire)",
        "sign_button": "Signer ce rapport",
        "comment_required": "Écrivez un commentaire avant de signer. Rien n’a été enregistré.",
        "printable": "Version imprimable",
        "back": "Retour aux rapports mensuels",
        "noreport_title": "Pas de rapport pour ce mois",
        "noreport_text": "Il n’y a pas encore de rapport pour {month}. Un coordinateur, un réviseur ou un administrateur peut établir un projet depuis la liste.",
        "forbidden_title": "Non autorisé",
        "forbidden_text": "Votre rôle ({role}) ne le permet pas : seul un {roles} peut {action}. Rien n’a été enregistré.",
        "action_sign": "signer un rapport mensuel",
        "action_generate": "établir un rapport mensuel",
        "signed_already_title": "Déjà signé",
        "signed_already_text": "Le rapport de {month} a été signé par {by} le {when}. Un rapport signé est figé et ne peut pas être signé à nouveau. Rien n’a été enregistré.",
        "changed_title": "Les chiffres ont changé",
        "changed_text": "Les chiffres de {month} ont changé depuis que vous avez ouvert la page (de nouveaux événements sont arrivés). Relisez-les avant de signer. Rien n’a été enregistré.",
        "console_csrf_title": "Veuillez réessayer",
        "console_csrf_text": "Ce formulaire est trop ancien ou ne vient pas de la console. Rouvrez la page et envoyez-le depuis celle-ci. Rien n’a été enregistré.",
        "login_required_title": "Connexion requise",
        "login_required_text": "Connectez-vous d’abord à la console. Rien n’a été enregistré.",
        "sign_in_link": "Aller à la page de connexion",
        "role_viewer": "lecteur", "role_coordinator": "coordinateur", "role_reviewer": "réviseur", "role_admin": "administrateur",
        "or": "ou",
    },
    "de": {
        "console": "Konsole",
        "login_title": "An der Konsole anmelden",
        "username": "Benutzername",
        "password": "Passwort",
        "login_button": "Anmelden",
        "login_failed": "Falscher Benutzername oder falsches Passwort, oder das Konto ist deaktiviert.",
        "logout": "Abmelden",
        "signed_in_as": "Angemeldet als {user} ({role})",
        "monthly_title": "Monatsberichte",
        "month": "Monat",
        "status": "Status",
        "status_draft": "Entwurf",
        "status_signed": "Unterzeichnet",
        "signed_by": "Unterzeichnet von",
        "signed_at": "Unterzeichnet am",
        "generated_at": "Erstellt",
        "no_reports": "Noch kein Monatsbericht.",
        "open": "Öffnen",
        "generate_title": "Einen Entwurf erstellen",
        "generate_label": "Monat (JJJJ-MM)",
        "generate_button": "Erstellen",
        "bad_month": "„{month}“ ist kein Monat: schreiben Sie JJJJ-MM, z. B. 2026-03.",
        "report_title": "Monatsbericht {month}",
        "draft_note": "Entwurf erstellt am {when}. Er wird neu berechnet, bis ein Prüfer ihn unterzeichnet.",
        "signed_note": "Unterzeichnet von {by} am {when}.",
        "comment": "Kommentar",
        "sign_title": "Unterzeichnen",
        "sign_intro": "Mit der Unterschrift frieren Sie diese Zahlen ein: Sie ändern sich nicht mehr, und Ihr Name und der Zeitpunkt werden festgehalten.",
        "comment_label": "Kommentar (Pflichtfeld)",
        "sign_button": "Diesen Bericht unterzeichnen",
        "comment_required": "Schreiben Sie vor dem Unterzeichnen einen Kommentar. Es wurde nichts erfasst.",
        "printable": "Druckversion",
        "back": "Zurück zu den Monatsberichten",
        "noreport_title": "Kein Bericht für diesen Monat",
        "noreport_text": "Für {month} gibt es noch keinen Bericht. Ein Koordinator, Prüfer oder Administrator kann in der Liste einen Entwurf erstellen.",
        "forbidden_title": "Nicht erlaubt",
        "forbidden_text": "Ihre Rolle ({role}) erlaubt das nicht: nur ein {roles} darf {action}. Es wurde nichts erfasst.",
        "action_sign": "einen Monatsbericht unterzeichnen",
        "action_generate": "einen Monatsbericht erstellen",
        "signed_already_title": "Bereits unterzeichnet",
        "signed_already_text": "Der Bericht für {month} wurde von {by} am {when} unterzeichnet. Ein unterzeichneter Bericht ist eingefroren und kann nicht erneut unterzeichnet werden. Es wurde nichts erfasst.",
        "changed_title": "Die Zahlen haben sich geändert",
        "changed_text": "Die Zahlen für {month} haben sich geändert, seit Sie die Seite geöffnet haben (neue Ereignisse sind eingetroffen). Lesen Sie sie vor dem Unterzeichnen erneut. Es wurde nichts erfasst.",
        "console_csrf_title": "Bitte erneut versuchen",
        "console_csrf_text": "Dieses Formular ist zu alt oder stammt nicht von der Konsole. Öffnen Sie die Seite erneut und senden Sie es von dort ab. Es wurde nichts erfasst.",
        "login_required_title": "Anmeldung erforderlich",
        "login_required_text": "Melden Sie sich zuerst an der Konsole an. Es wurde nichts erfasst.",
        "sign_in_link": "Zur Anmeldeseite",
        "role_viewer": "Leser", "role_coordinator": "Koordinator", "role_reviewer": "Prüfer", "role_admin": "Administrator",
        "or": "oder",
    },
}


def pick_console_language(requested: str | None, fallback: str = "en") -> str:
    """``?lang=`` when the console speaks it, else ``fallback`` when it does, else English."""
    for tag in (requested, fallback):
        base = (tag or "").split("-")[0].split("_")[0].lower()
        if base in CONSOLE_LANGUAGES:
            return base
    return "en"


def console_texts(language: str) -> dict[str, str]:
    """The console's strings merged over the ack pages' (footer, rate limit, not found...)."""
    return {**texts(language), **CONSOLE_CATALOGUE.get(language, CONSOLE_CATALOGUE["en"])}
