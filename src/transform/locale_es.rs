//! A small Spanish (Spain) data set of our own: `fake` 5 has no Spanish locale. It implements
//! `fake`'s locale `Data` trait, so every `fake` generator works with it like with a built-in
//! locale; what it does not override (lorem words, some formats) is `fake`'s default.

use fake::faker::address::raw::CityName;
use fake::faker::impls::address::CityNameGenFn;
use fake::locales::Data;
use fake::rand::RngExt;
use fake::rand::seq::IndexedRandom;

/// Spanish (Spain).
#[derive(Debug, Clone, Copy)]
pub struct Es;

#[rustfmt::skip]
impl Data for Es {
    const NAME_FIRST_NAME: &'static [&'static str] = &[
        "Adrián", "Alba", "Alejandro", "Alicia", "Álvaro", "Ana", "Andrea", "Ángel", "Antonio", "Beatriz",
        "Carla", "Carlos", "Carmen", "Cristina", "Daniel", "David", "Diego", "Elena", "Emilio", "Enrique",
        "Eva", "Fernando", "Francisco", "Gabriel", "Gloria", "Guillermo", "Héctor", "Hugo", "Inés", "Irene",
        "Isabel", "Iván", "Javier", "Jesús", "Jorge", "José", "Josefa", "Juan", "Julia", "Laura",
        "Lucía", "Luis", "Manuel", "Marcos", "María", "Marina", "Mario", "Marta", "Miguel", "Mónica",
        "Natalia", "Nerea", "Nuria", "Óscar", "Pablo", "Paula", "Pedro", "Pilar", "Rafael", "Raquel",
        "Ramón", "Raúl", "Rocío", "Rosa", "Rubén", "Sara", "Sergio", "Silvia", "Sofía", "Teresa",
        "Tomás", "Valeria", "Vicente", "Víctor", "Yolanda", "Agustín", "Almudena", "Amparo", "Andrés", "Aurora",
        "Blanca", "Borja", "Concepción", "Consuelo", "Dolores", "Eduardo", "Esperanza", "Esther", "Federico", "Gonzalo",
        "Ignacio", "Jaime", "Joaquín", "Lorena", "Lourdes", "Martín", "Mercedes", "Montserrat", "Nicolás", "Patricia",
        "Ricardo", "Roberto", "Rodrigo", "Salvador", "Santiago", "Susana", "Verónica", "Xavier", "Ainhoa", "Iker",
    ];
    const NAME_LAST_NAME: &'static [&'static str] = &[
        "García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Martín",
        "Jiménez", "Hernández", "Ruiz", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero", "Gutiérrez", "Alonso",
        "Navarro", "Torres", "Domínguez", "Ramos", "Vázquez", "Ramírez", "Gil", "Serrano", "Morales", "Molina",
        "Blanco", "Suárez", "Castro", "Ortega", "Delgado", "Ortiz", "Marín", "Rubio", "Núñez", "Medina",
        "Sanz", "Castillo", "Iglesias", "Cortés", "Garrido", "Santos", "Guerrero", "Lozano", "Cano", "Cruz",
        "Méndez", "Flores", "Prieto", "Herrera", "Peña", "León", "Márquez", "Cabrera", "Gallego", "Calvo",
        "Vidal", "Campos", "Reyes", "Vega", "Fuentes", "Carrasco", "Diez", "Aguilar", "Caballero", "Nieto",
        "Santana", "Vargas", "Pascual", "Giménez", "Herrero", "Hidalgo", "Montero", "Lorenzo", "Santiago", "Benítez",
        "Durán", "Ibáñez", "Arias", "Mora", "Ferrer", "Carmona", "Vicente", "Rojas", "Soto", "Crespo",
        "Román", "Pastor", "Velasco", "Parra", "Sáez", "Moya", "Bravo", "Rivera", "Gallardo", "Soler",
    ];
    const NAME_TITLE: &'static [&'static str] = &["Sr.", "Sra.", "Srta.", "Dr.", "Dra."];
    const NAME_WITH_TITLE_TPL: &'static str = "{Title} {FirstName} {LastName}";

    const ADDRESS_STREET_SUFFIX: &'static [&'static str] = &[
        "Calle", "Avenida", "Plaza", "Paseo", "Camino", "Ronda", "Travesía", "Carrera", "Glorieta", "Callejón",
    ];
    const ADDRESS_STREET_TPL: &'static str = "{StreetSuffix} {StreetName}";
    const ADDRESS_BUILDING_NUMBER_FORMATS: &'static [&'static str] = &["#", "##", "###"];
    const ADDRESS_ZIP_FORMATS: &'static [&'static str] = &["0####", "1####", "2####", "3####", "4####"];
    const ADDRESS_POSTCODE_FORMATS: &'static [&'static str] = &["0####", "1####", "2####", "3####", "4####"];
    const ADDRESS_STATE: &'static [&'static str] = &[
        "Andalucía", "Aragón", "Asturias", "Islas Baleares", "Canarias", "Cantabria", "Castilla y León",
        "Castilla-La Mancha", "Cataluña", "Comunidad Valenciana", "Extremadura", "Galicia", "Madrid",
        "Murcia", "Navarra", "País Vasco", "La Rioja",
    ];
    const ADDRESS_SECONDARY_ADDR_TYPE: &'static [&'static str] = &["Piso", "Puerta", "Escalera"];
    const ADDRESS_SECONDARY_ADDR_TPL: &'static str = "{SecondaryAddrType} {Number}";
    const ADDRESS_COUNTRY: &'static [&'static str] = &[
        "España", "Portugal", "Francia", "Italia", "Alemania", "Reino Unido", "Irlanda", "Países Bajos",
        "Bélgica", "Suiza", "Austria", "Suecia", "Noruega", "Dinamarca", "Finlandia", "Polonia",
        "Grecia", "Turquía", "Marruecos", "Argelia", "Egipto", "Estados Unidos", "Canadá", "México",
        "Guatemala", "Cuba", "República Dominicana", "Colombia", "Venezuela", "Ecuador", "Perú",
        "Bolivia", "Chile", "Argentina", "Uruguay", "Paraguay", "Brasil", "Japón", "China", "India",
        "Australia", "Sudáfrica",
    ];
    const ADDRESS_COUNTRY_CODE: &'static [&'static str] = &["ES"];

    const COMPANY_SUFFIX: &'static [&'static str] = &["S.A.", "S.L.", "S.L.U.", "S.Coop.", "y Asociados", "Hermanos"];
    const COMPANY_NAME_TPLS: &'static [&'static str] = &["{Name_1} {Suffix}", "{Name_1} y {Name_2} {Suffix}", "Grupo {Name_1}"];

    const PHONE_NUMBER_FORMATS: &'static [&'static str] = &["91# ### ###", "93# ### ###", "95# ### ###", "96# ### ###", "98# ### ###", "+34 9## ### ###"];
    const PHONE_CELL_NUMBER_FORMATS: &'static [&'static str] = &["6## ### ###", "7## ### ###", "+34 6## ### ###", "+34 7## ### ###"];

    const INTERNET_FREE_EMAIL_PROVIDER: &'static [&'static str] = &["example.com", "example.net", "example.org"];
    const INTERNET_DOMAIN_SUFFIX: &'static [&'static str] = &["es", "com", "net", "org"];
}

/// Spanish cities: real names read better than built ones ("Port Sánchezville").
#[rustfmt::skip]
pub(crate) const ES_CITIES: &[&str] = &[
    "Madrid", "Barcelona", "Valencia", "Sevilla", "Zaragoza", "Málaga", "Murcia", "Palma", "Las Palmas de Gran Canaria",
    "Bilbao", "Alicante", "Córdoba", "Valladolid", "Vigo", "Gijón", "L'Hospitalet de Llobregat", "Vitoria-Gasteiz",
    "A Coruña", "Elche", "Granada", "Terrassa", "Badalona", "Oviedo", "Cartagena", "Sabadell", "Jerez de la Frontera",
    "Móstoles", "Santa Cruz de Tenerife", "Pamplona", "Almería", "Alcalá de Henares", "Fuenlabrada", "Leganés",
    "San Sebastián", "Getafe", "Burgos", "Albacete", "Santander", "Castellón de la Plana", "Alcorcón",
    "San Cristóbal de La Laguna", "Logroño", "Badajoz", "Salamanca", "Huelva", "Marbella", "Lleida", "Tarragona",
    "León", "Cádiz", "Jaén", "Ourense", "Girona", "Lugo", "Cáceres", "Santiago de Compostela", "Segovia", "Toledo",
    "Ávila", "Cuenca", "Soria", "Teruel", "Huesca", "Zamora", "Palencia", "Guadalajara", "Ciudad Real",
];

impl CityNameGenFn for Es {
    fn r#gen<R: RngExt + ?Sized>(_: &CityName<Self>, rng: &mut R) -> String {
        ES_CITIES
            .choose(rng)
            .copied()
            .unwrap_or("Madrid")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fake::Fake;
    use fake::faker::name::raw::Name;
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn fake_generators_work_with_spanish() {
        let mut rng = ChaCha8Rng::from_seed([7; 32]);
        let name: String = Name(Es).fake_with_rng(&mut rng);
        assert!(name.contains(' '), "{name}");
        let city: String = CityName(Es).fake_with_rng(&mut rng);
        assert!(ES_CITIES.contains(&city.as_str()), "{city}");
    }
}
