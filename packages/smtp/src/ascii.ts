/**
 * Upper-cases a-z only. SMTP verbs, keywords and mechanism names are ASCII (RFC 5321 §2.4);
 * String#toUpperCase would also fold "ı" (U+0131) to "I" and "ſ" (U+017F) to "S", so "quıt"
 * would run QUIT and "ſtarttls" STARTTLS — a filter in front of us would see neither.
 */
export function asciiUpper(text: string): string {
  // Common case first: pure ASCII, where toUpperCase folds exactly a-z.
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) return text.replace(/[a-z]+/g, (run) => run.toUpperCase());
  }
  return text.toUpperCase();
}
