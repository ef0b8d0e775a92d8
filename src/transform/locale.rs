//! Locales of fake values: which ones exist, how their names are written, and the data that
//! `fake` lacks or gets wrong for our use (romanized Japanese names for emails, German and
//! Japanese country lists, Japanese cities, German phone numbers, postcode formats).
//! Spanish, which `fake` does not have at all, is in [`super::locale_es`].

use std::fmt;

/// A supported locale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Locale {
    En,
    Fr,
    De,
    Es,
    PtBr,
    Ja,
}

/// Canonical names of the supported locales, in the order shown to users.
pub const LOCALES: &[&str] = &["en", "fr", "de", "es", "pt_br", "ja"];

impl Locale {
    /// Reads a locale name: the canonical one, or a common spelling of it (`fr_FR`, `pt-BR`,
    /// `en_US`, `ja_JP`...).
    pub fn parse(name: &str) -> Option<Locale> {
        let normal = name.trim().to_ascii_lowercase().replace('-', "_");
        match normal.as_str() {
            "en" | "en_us" | "en_gb" => Some(Locale::En),
            "fr" | "fr_fr" => Some(Locale::Fr),
            "de" | "de_de" => Some(Locale::De),
            "es" | "es_es" => Some(Locale::Es),
            "pt_br" => Some(Locale::PtBr),
            "ja" | "ja_jp" => Some(Locale::Ja),
            _ => None,
        }
    }

    /// The canonical name (what identities and documentation use).
    pub fn name(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Fr => "fr",
            Locale::De => "de",
            Locale::Es => "es",
            Locale::PtBr => "pt_br",
            Locale::Ja => "ja",
        }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The message for an unsupported locale, as the tail of a BadParam.
pub(crate) fn unsupported(name: &str) -> String {
    format!(
        "`{name}` is not a supported locale (supported: {})",
        LOCALES.join(", ")
    )
}

/// The same, standing alone (for config validation).
pub(crate) fn unsupported_message(name: &str) -> String {
    unsupported(name)
}

/// Runs `$body` with `$l` bound to the `fake` locale value of `$locale`, so generic code over
/// `fake::locales::Data` is instantiated once per locale.
macro_rules! with_locale {
    ($locale:expr, $l:ident => $body:expr) => {
        match $locale {
            $crate::transform::locale::Locale::En => {
                let $l = fake::locales::EN;
                $body
            }
            $crate::transform::locale::Locale::Fr => {
                let $l = fake::locales::FR_FR;
                $body
            }
            $crate::transform::locale::Locale::De => {
                let $l = fake::locales::DE_DE;
                $body
            }
            $crate::transform::locale::Locale::Es => {
                let $l = $crate::transform::locale_es::Es;
                $body
            }
            $crate::transform::locale::Locale::PtBr => {
                let $l = fake::locales::PT_BR;
                $body
            }
            $crate::transform::locale::Locale::Ja => {
                let $l = fake::locales::JA_JP;
                $body
            }
        }
    };
}
pub(crate) use with_locale;

/// Japanese names in Latin letters: `fake`'s Japanese names are in kanji and kana, which have
/// no place in an email address or a username.
pub(crate) const JA_ROMAJI_FIRST: &[&str] = &[
    "haruto", "yuto", "sota", "yuki", "hayato", "haruki", "ryusei", "koki", "sora", "sosuke",
    "riku", "kaito", "takumi", "daiki", "ren", "kenta", "shota", "yusuke", "takeshi", "hiroshi",
    "akira", "kenji", "makoto", "satoshi", "naoki", "yui", "hina", "aoi", "sakura", "yuna", "rin",
    "mei", "mio", "akari", "emi", "haruka", "nanami", "misaki", "ayaka", "yuka", "kaori", "megumi",
    "tomoko", "yoko", "keiko", "naomi", "mai", "saki", "ami", "riko",
];

pub(crate) const JA_ROMAJI_LAST: &[&str] = &[
    "sato",
    "suzuki",
    "takahashi",
    "tanaka",
    "watanabe",
    "ito",
    "yamamoto",
    "nakamura",
    "kobayashi",
    "kato",
    "yoshida",
    "yamada",
    "sasaki",
    "yamaguchi",
    "matsumoto",
    "inoue",
    "kimura",
    "hayashi",
    "shimizu",
    "yamazaki",
    "mori",
    "abe",
    "ikeda",
    "hashimoto",
    "yamashita",
    "ishikawa",
    "nakajima",
    "maeda",
    "fujita",
    "ogawa",
    "goto",
    "okada",
    "hasegawa",
    "murakami",
    "kondo",
    "ishii",
    "saito",
    "sakamoto",
    "endo",
    "aoki",
    "fujii",
    "nishimura",
    "fukuda",
    "ota",
    "miura",
    "fujiwara",
    "okamoto",
    "matsuda",
    "nakagawa",
    "harada",
];

/// Japanese cities (`fake`'s Japanese locale builds English-style city names).
pub(crate) const JA_CITIES: &[&str] = &[
    "東京",
    "横浜",
    "大阪",
    "名古屋",
    "札幌",
    "福岡",
    "神戸",
    "川崎",
    "京都",
    "さいたま",
    "広島",
    "仙台",
    "千葉",
    "北九州",
    "堺",
    "浜松",
    "新潟",
    "熊本",
    "相模原",
    "岡山",
    "静岡",
    "船橋",
    "鹿児島",
    "川口",
    "八王子",
    "姫路",
    "宇都宮",
    "松山",
    "東大阪",
    "西宮",
    "倉敷",
    "市川",
    "松戸",
    "大分",
    "金沢",
    "福山",
    "尼崎",
    "長崎",
    "町田",
    "富山",
    "豊田",
    "高松",
    "横須賀",
    "岐阜",
    "藤沢",
    "枚方",
    "柏",
    "豊中",
    "長野",
    "那覇",
];

/// Country names in Japanese (`fake`'s Japanese locale has only English ones).
pub(crate) const JA_COUNTRIES: &[&str] = &[
    "日本",
    "アメリカ合衆国",
    "中国",
    "韓国",
    "台湾",
    "イギリス",
    "フランス",
    "ドイツ",
    "イタリア",
    "スペイン",
    "カナダ",
    "オーストラリア",
    "ブラジル",
    "メキシコ",
    "インド",
    "インドネシア",
    "タイ",
    "ベトナム",
    "フィリピン",
    "マレーシア",
    "シンガポール",
    "ロシア",
    "オランダ",
    "スイス",
    "スウェーデン",
    "ノルウェー",
    "フィンランド",
    "デンマーク",
    "ポルトガル",
    "ギリシャ",
    "トルコ",
    "エジプト",
    "南アフリカ",
    "アルゼンチン",
    "チリ",
    "ペルー",
    "ニュージーランド",
    "アイルランド",
    "ベルギー",
    "オーストリア",
];

/// Country names in German (`fake`'s German locale has only "Deutschland" and "Germany").
pub(crate) const DE_COUNTRIES: &[&str] = &[
    "Deutschland",
    "Österreich",
    "Schweiz",
    "Frankreich",
    "Italien",
    "Spanien",
    "Portugal",
    "Niederlande",
    "Belgien",
    "Luxemburg",
    "Dänemark",
    "Schweden",
    "Norwegen",
    "Finnland",
    "Polen",
    "Tschechien",
    "Ungarn",
    "Griechenland",
    "Türkei",
    "Irland",
    "Vereinigtes Königreich",
    "Vereinigte Staaten",
    "Kanada",
    "Mexiko",
    "Brasilien",
    "Argentinien",
    "Chile",
    "Japan",
    "China",
    "Indien",
    "Australien",
    "Neuseeland",
    "Südafrika",
    "Ägypten",
    "Marokko",
    "Kroatien",
    "Slowenien",
    "Rumänien",
    "Bulgarien",
    "Island",
];

/// French cities (`fake`'s French locale uses last names as city names).
pub(crate) const FR_CITIES: &[&str] = &[
    "Paris",
    "Marseille",
    "Lyon",
    "Toulouse",
    "Nice",
    "Nantes",
    "Montpellier",
    "Strasbourg",
    "Bordeaux",
    "Lille",
    "Rennes",
    "Toulon",
    "Reims",
    "Saint-Étienne",
    "Le Havre",
    "Dijon",
    "Grenoble",
    "Angers",
    "Villeurbanne",
    "Nîmes",
    "Clermont-Ferrand",
    "Aix-en-Provence",
    "Le Mans",
    "Brest",
    "Tours",
    "Amiens",
    "Limoges",
    "Annecy",
    "Perpignan",
    "Boulogne-Billancourt",
    "Metz",
    "Besançon",
    "Orléans",
    "Saint-Denis",
    "Rouen",
    "Argenteuil",
    "Mulhouse",
    "Montreuil",
    "Caen",
    "Nancy",
    "Tourcoing",
    "Roubaix",
    "Nanterre",
    "Vitry-sur-Seine",
    "Avignon",
    "Créteil",
    "Poitiers",
    "Pau",
    "La Rochelle",
    "Calais",
    "Cannes",
    "Béziers",
    "Colmar",
    "Quimper",
];

/// German cities (`fake`'s German locale builds names like "Alt-Jürgen Schmitzberg").
pub(crate) const DE_CITIES: &[&str] = &[
    "Berlin",
    "Hamburg",
    "München",
    "Köln",
    "Frankfurt am Main",
    "Stuttgart",
    "Düsseldorf",
    "Leipzig",
    "Dortmund",
    "Essen",
    "Bremen",
    "Dresden",
    "Hannover",
    "Nürnberg",
    "Duisburg",
    "Bochum",
    "Wuppertal",
    "Bielefeld",
    "Bonn",
    "Münster",
    "Mannheim",
    "Karlsruhe",
    "Augsburg",
    "Wiesbaden",
    "Mönchengladbach",
    "Gelsenkirchen",
    "Aachen",
    "Braunschweig",
    "Kiel",
    "Chemnitz",
    "Halle (Saale)",
    "Magdeburg",
    "Freiburg im Breisgau",
    "Krefeld",
    "Mainz",
    "Lübeck",
    "Erfurt",
    "Oberhausen",
    "Rostock",
    "Kassel",
    "Hagen",
    "Potsdam",
    "Saarbrücken",
    "Hamm",
    "Ludwigshafen am Rhein",
    "Oldenburg",
    "Mülheim an der Ruhr",
    "Osnabrück",
    "Leverkusen",
    "Heidelberg",
    "Darmstadt",
    "Regensburg",
    "Würzburg",
    "Göttingen",
    "Ulm",
    "Jena",
    "Trier",
    "Konstanz",
];

/// Brazilian cities (`fake`'s Brazilian locale builds English-style names).
pub(crate) const PT_BR_CITIES: &[&str] = &[
    "São Paulo",
    "Rio de Janeiro",
    "Brasília",
    "Salvador",
    "Fortaleza",
    "Belo Horizonte",
    "Manaus",
    "Curitiba",
    "Recife",
    "Goiânia",
    "Belém",
    "Porto Alegre",
    "Guarulhos",
    "Campinas",
    "São Luís",
    "São Gonçalo",
    "Maceió",
    "Duque de Caxias",
    "Campo Grande",
    "Natal",
    "Teresina",
    "São Bernardo do Campo",
    "Nova Iguaçu",
    "João Pessoa",
    "Santo André",
    "Osasco",
    "São José dos Campos",
    "Jaboatão dos Guararapes",
    "Ribeirão Preto",
    "Uberlândia",
    "Sorocaba",
    "Contagem",
    "Aracaju",
    "Feira de Santana",
    "Cuiabá",
    "Joinville",
    "Juiz de Fora",
    "Londrina",
    "Aparecida de Goiânia",
    "Niterói",
    "Porto Velho",
    "Florianópolis",
    "Serra",
    "Caxias do Sul",
    "Vila Velha",
    "Macapá",
    "Campos dos Goytacazes",
    "Mauá",
    "São João de Meriti",
    "Santos",
];

/// Country names in Brazilian Portuguese (`fake`'s Brazilian locale has English ones).
pub(crate) const PT_BR_COUNTRIES: &[&str] = &[
    "Brasil",
    "Argentina",
    "Uruguai",
    "Paraguai",
    "Chile",
    "Bolívia",
    "Peru",
    "Colômbia",
    "Venezuela",
    "Equador",
    "México",
    "Estados Unidos",
    "Canadá",
    "Cuba",
    "Portugal",
    "Espanha",
    "França",
    "Itália",
    "Alemanha",
    "Reino Unido",
    "Irlanda",
    "Países Baixos",
    "Bélgica",
    "Suíça",
    "Áustria",
    "Suécia",
    "Noruega",
    "Dinamarca",
    "Finlândia",
    "Polônia",
    "Grécia",
    "Turquia",
    "Angola",
    "Moçambique",
    "Cabo Verde",
    "África do Sul",
    "Egito",
    "Marrocos",
    "Japão",
    "China",
    "Índia",
    "Austrália",
    "Nova Zelândia",
];

/// Company name shapes where `fake` has only English ones (`{1}`, `{2}`: last names, `{S}`: a
/// legal-form suffix of the locale).
pub(crate) const FR_COMPANY_TPLS: &[&str] = &[
    "{1} {S}",
    "{1} et {2}",
    "{1} et {2} {S}",
    "Groupe {1}",
    "{1} et Fils",
];
pub(crate) const FR_COMPANY_SUFFIXES: &[&str] = &["SA", "SARL", "SAS", "EURL", "SCOP"];
pub(crate) const DE_COMPANY_TPLS: &[&str] = &["{1} {S}", "{1} & {2} {S}", "{1} und {2} {S}"];
pub(crate) const PT_BR_COMPANY_TPLS: &[&str] =
    &["{1} {S}", "{1} e {2} {S}", "{1} & Filhos", "Grupo {1}"];

/// German phone numbers (`fake`'s German locale falls back to US formats).
pub(crate) const DE_PHONES: &[&str] = &[
    "0151 ########",
    "0160 ########",
    "0170 ########",
    "0176 ########",
    "030 ########",
    "040 ########",
    "089 ########",
    "0221 #######",
    "069 ########",
    "+49 15# ########",
];

/// Japanese postcodes (`fake`'s Japanese locale falls back to US ZIP codes).
pub(crate) const JA_POSTCODES: &[&str] = &["###-####"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_spellings() {
        for name in LOCALES {
            let locale = Locale::parse(name).unwrap();
            assert_eq!(locale.name(), *name);
        }
        assert_eq!(Locale::parse("fr_FR"), Some(Locale::Fr));
        assert_eq!(Locale::parse("pt-BR"), Some(Locale::PtBr));
        assert_eq!(Locale::parse("ja_JP"), Some(Locale::Ja));
        assert_eq!(Locale::parse("es-ES"), Some(Locale::Es));
        assert_eq!(Locale::parse("pt"), None);
        assert_eq!(Locale::parse("xx"), None);
    }

    #[test]
    fn unsupported_lists_supported() {
        assert_eq!(
            unsupported("xx"),
            "`xx` is not a supported locale (supported: en, fr, de, es, pt_br, ja)"
        );
    }

    #[test]
    fn romaji_is_ascii() {
        for n in JA_ROMAJI_FIRST.iter().chain(JA_ROMAJI_LAST) {
            assert!(n.bytes().all(|b| b.is_ascii_lowercase()), "{n}");
        }
    }
}
