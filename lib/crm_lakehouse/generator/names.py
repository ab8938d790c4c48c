"""Name, place and phone conventions per country, as the people in each region write them."""

from __future__ import annotations

# (native spelling, latin spelling for e-mail addresses)
CN_SURNAMES = [("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
               ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
               ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("高", "gao"),
               ("林", "lin"), ("罗", "luo"), ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song")]
# (native, latin, gender)
CN_GIVEN = [("伟", "wei", "M"), ("芳", "fang", "F"), ("娜", "na", "F"), ("秀英", "xiuying", "F"), ("敏", "min", "F"),
            ("静", "jing", "F"), ("丽", "li", "F"), ("强", "qiang", "M"), ("磊", "lei", "M"), ("军", "jun", "M"),
            ("洋", "yang", "M"), ("勇", "yong", "M"), ("艳", "yan", "F"), ("杰", "jie", "M"), ("娟", "juan", "F"),
            ("涛", "tao", "M"), ("明", "ming", "M"), ("超", "chao", "M"), ("秀兰", "xiulan", "F"), ("霞", "xia", "F"),
            ("平", "ping", "M"), ("刚", "gang", "M"), ("桂英", "guiying", "F"), ("建华", "jianhua", "M"),
            ("晓东", "xiaodong", "M"), ("海燕", "haiyan", "F"), ("子涵", "zihan", "F"), ("浩然", "haoran", "M")]

# Lists alternate male (even positions) and female (odd positions) names: the draw picks the gender too.
FIRST_NAMES = {
    "US": ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
           "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Chris", "Karen",
           "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Sandra", "Steven", "Ashley"],
    "GB": ["Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Emily", "Charlie", "Sophie",
           "Thomas", "Grace", "Oscar", "Lily", "William", "Freya", "James", "Poppy", "Henry", "Ella"],
    "DE": ["Lukas", "Anna", "Leon", "Lena", "Finn", "Marie", "Jonas", "Sophie", "Paul", "Emma",
           "Felix", "Hannah", "Maximilian", "Lea", "Jürgen", "Jana", "Stefan", "Katrin", "Uwe", "Sabine"],
    "FR": ["Louis", "Camille", "Gabriel", "Léa", "Jules", "Manon", "Lucas", "Chloé", "Hugo", "Inès",
           "Arthur", "Jade", "Raphaël", "Louise", "Théo", "Zoé", "Nathan", "Amélie", "François", "Élodie"],
    "ES": ["Hugo", "Lucía", "Martín", "Sofía", "Daniel", "María", "Pablo", "Martina", "Alejandro", "Paula",
           "Álvaro", "Julia", "Adrián", "Carmen", "Javier", "Elena", "Sergio", "Laura", "Jorge", "Nuria"],
    "IT": ["Leonardo", "Sofia", "Francesco", "Giulia", "Alessandro", "Aurora", "Lorenzo", "Alice", "Mattia",
           "Ginevra", "Andrea", "Emma", "Gabriele", "Giorgia", "Riccardo", "Beatrice", "Tommaso", "Chiara"],
}
LAST_NAMES = {
    "US": ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
           "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson",
           "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Young", "O'Brien"],
    "GB": ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
           "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Hughes"],
    "DE": ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
           "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann"],
    "FR": ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
           "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux"],
    "ES": ["García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez",
           "Gómez", "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez"],
    "IT": ["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
           "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo"],
}
EMAIL_DOMAINS = {
    "CN": ["qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "outlook.com"],
    "US": ["gmail.com", "yahoo.com", "outlook.com", "aol.com", "icloud.com", "hotmail.com"],
    "GB": ["gmail.com", "hotmail.co.uk", "btinternet.com", "outlook.com", "yahoo.co.uk"],
    "DE": ["gmail.com", "web.de", "gmx.de", "t-online.de", "outlook.de"],
    "FR": ["gmail.com", "orange.fr", "free.fr", "laposte.net", "outlook.fr"],
    "ES": ["gmail.com", "hotmail.es", "yahoo.es", "telefonica.net", "outlook.es"],
    "IT": ["gmail.com", "libero.it", "virgilio.it", "alice.it", "outlook.it"],
}
# How a system outside China writes a Chinese city or street (pinyin, as on the city's own signs).
CN_CITIES_LATIN = {"上海": "Shanghai", "北京": "Beijing", "广州": "Guangzhou", "深圳": "Shenzhen", "成都": "Chengdu",
                   "杭州": "Hangzhou", "武汉": "Wuhan", "南京": "Nanjing", "重庆": "Chongqing", "西安": "Xi'an"}
CN_STREETS_LATIN = {"中山路": "Zhongshan Lu", "人民路": "Renmin Lu", "解放路": "Jiefang Lu", "建设路": "Jianshe Lu",
                    "和平路": "Heping Lu", "南京路": "Nanjing Lu", "长安街": "Chang'an Jie", "淮海路": "Huaihai Lu"}
CITIES = {
    "CN": ["上海", "北京", "广州", "深圳", "成都", "杭州", "武汉", "南京", "重庆", "西安"],
    "US": ["New York", "Los Angeles", "Chicago", "Houston", "Phoenix", "Philadelphia", "San Diego",
           "Dallas", "Seattle", "Boston"],
    "GB": ["London", "Manchester", "Birmingham", "Leeds", "Glasgow", "Bristol", "Liverpool"],
    "DE": ["Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Stuttgart", "Düsseldorf"],
    "FR": ["Paris", "Marseille", "Lyon", "Toulouse", "Nice", "Nantes", "Strasbourg"],
    "ES": ["Madrid", "Barcelona", "Valencia", "Sevilla", "Zaragoza", "Málaga", "Bilbao"],
    "IT": ["Roma", "Milano", "Napoli", "Torino", "Palermo", "Genova", "Bologna"],
}
STREETS = {
    "CN": ["中山路", "人民路", "解放路", "建设路", "和平路", "南京路", "长安街", "淮海路"],
    "US": ["Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Park Ave", "Elm St", "Washington Blvd"],
    "GB": ["High Street", "Station Road", "Church Lane", "Victoria Road", "Green Lane", "Mill Road"],
    "DE": ["Hauptstraße", "Schulstraße", "Gartenstraße", "Bahnhofstraße", "Dorfstraße", "Bergstraße"],
    "FR": ["rue de la Paix", "avenue Victor Hugo", "rue Pasteur", "boulevard Voltaire", "rue Nationale"],
    "ES": ["Calle Mayor", "Calle Real", "Avenida de la Constitución", "Calle del Sol", "Gran Vía"],
    "IT": ["Via Roma", "Via Garibaldi", "Corso Italia", "Via Dante", "Via Mazzini", "Via Verdi"],
}

# National significant numbers that libphonenumber accepts as valid mobile/fixed lines:
# (prefixes, how many random digits follow, international dialling code, lowest value of those
# digits: a US exchange cannot start with 0 or 1). Checked with phonenumbers.is_valid_number.
PHONE_PLANS = {
    "CN": (["138", "139", "135", "136", "137", "150", "151", "158", "186", "188"], 8, "86", 0),
    "US": (["212", "415", "312", "617", "206", "305", "404", "512", "646", "718"], 7, "1", 2_000_000),
    "GB": (["7400", "7500", "7711", "7722", "7800", "7950", "7123", "7890"], 6, "44", 0),
    "DE": (["151", "152", "160", "162", "170", "171", "172", "176"], 8, "49", 0),
    "FR": (["60", "61", "62", "64", "65", "66", "67", "68", "75", "76", "77", "78"], 7, "33", 0),
    "ES": (["60", "61", "62", "63", "64", "65", "66", "67", "68", "69", "71", "72", "73"], 7, "34", 0),
    "IT": (["320", "328", "333", "338", "340", "347", "348", "393"], 7, "39", 0),
}
# A shop's own number, typed in for walk-in customers: shared by many unrelated people.
STORE_PHONES = {"CN": "+862150001234", "US": "+12125550100", "GB": "+442079460000",
                "DE": "+493012345678", "FR": "+33140000000", "ES": "+34910000000", "IT": "+390600000000"}
PLACEHOLDER_EMAILS = ["noemail@example.com", "none@none.com"]
PLACEHOLDER_PHONE = "0000000000"

PRODUCT_CATEGORIES = {
    "Electronics": (["Headphones", "Smartwatch", "Speaker", "Charger", "Tablet", "Camera"], 40, 900),
    "Apparel": (["T-Shirt", "Jacket", "Sneakers", "Jeans", "Dress", "Scarf"], 10, 250),
    "Home": (["Lamp", "Cushion", "Kettle", "Blender", "Rug", "Vase"], 12, 300),
    "Beauty": (["Serum", "Lipstick", "Moisturizer", "Perfume", "Shampoo"], 8, 150),
    "Sports": (["Yoga Mat", "Dumbbell", "Bike Helmet", "Running Shorts", "Tennis Racket"], 15, 400),
    "Grocery": (["Green Tea", "Coffee Beans", "Olive Oil", "Chocolate", "Honey"], 3, 40),
    "Toys": (["Puzzle", "Building Blocks", "Plush Bear", "Board Game", "Kite"], 6, 120),
}
BRANDS = ["Aurora", "Nordlicht", "Zenith", "Lumo", "Harbor", "Kestrel", "Sakura", "Vela", "Orchid", "Atlas"]

# FX base rates (USD per unit) around which the synthetic daily rates move.
FX_BASE_USD_PER_UNIT = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CNY": 0.139}
COUNTRY_CURRENCY = {"CN": "CNY", "US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "ES": "EUR", "IT": "EUR"}
UNKNOWN_CURRENCIES = ["XXX", "EURO", "RMB$", "US"]
INTERACTION_TYPES = ["ticket", "call", "email", "campaign_response"]
INTERACTION_SUBJECTS = ["delivery delay", "refund request", "product question", "billing", "complaint",
                        "account update", "promotion", "feedback"]
