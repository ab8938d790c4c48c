"""Column names exports use for each canonical field, in English, German, French, Spanish,
Chinese and Japanese, compared after folding case, accents, spaces and punctuation away."""

from __future__ import annotations

import re
import unicodedata

SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "customers": {
        "source_customer_id": ("customer id", "customerid", "cust id", "customer no", "customer number", "client id",
                               "contact id", "record id", "member id", "account id", "kundennr", "kundennummer",
                               "kunden id", "numero client", "id client", "id cliente", "numero cliente",
                               "客户编号", "客户id", "会员编号", "会員番号", "顧客id", "顧客番号"),
        "full_name": ("name", "full name", "customer name", "contact name", "nom", "nom complet", "nombre",
                      "nombre completo", "姓名", "客户名称", "名字", "氏名", "名前"),
        "email": ("email", "e mail", "email address", "mail", "courriel", "correo", "correo electronico",
                  "邮箱", "电子邮件", "メール", "メールアドレス"),
        "phone": ("phone", "phone number", "telephone", "tel", "mobile", "cell", "telefon", "telefonnummer", "handy",
                  "telefono", "movil", "电话", "手机", "手机号", "电话号码", "電話番号", "携帯"),
        "gender": ("gender", "sex", "geschlecht", "sexe", "sexo", "genero", "性别", "性別"),
        "birth_date": ("birth date", "birthdate", "date of birth", "dob", "birthday", "geburtsdatum",
                       "date de naissance", "fecha de nacimiento", "出生日期", "生日", "生年月日"),
        "country": ("country", "country region", "country code", "land", "pays", "pais", "国家", "国"),
        "city": ("city", "town", "ort", "stadt", "ville", "ciudad", "城市", "市区町村"),
        "address": ("address", "street", "address line", "strasse", "adresse", "direccion", "地址", "住所"),
        "signup_at": ("create date", "created", "created at", "creation date", "signup", "sign up date", "registered",
                      "angelegt", "erstellt", "date de creation", "fecha de alta", "注册时间", "创建时间", "登録日時"),
        "updated_at": ("last modified date", "modified", "updated", "updated at", "last modified", "geaendert",
                       "geandert", "date de modification", "fecha de modificacion", "更新时间", "修改时间", "更新日時"),
        "operation": ("operation", "op", "change type", "action", "aktion", "操作", "操作类型"),
        "sequence_number": ("sequence", "seq", "lsn", "change seq", "sequenz", "序号", "序列号"),
    },
    "orders": {
        "order_id": ("order id", "orderid", "order no", "order number", "invoice", "invoice no", "invoiceno",
                     "invoice number", "receipt", "belegnr", "bestellnr", "bestellnummer", "numero de commande",
                     "commande", "pedido", "numero de pedido", "订单号", "订单编号", "注文番号"),
        "line_number": ("line", "line no", "line number", "position", "pos", "zeile", "ligne", "linea", "行号", "明细号"),
        "source_customer_id": ("customer id", "customerid", "customer", "cust id", "client id", "customer no",
                               "kundennr", "kunde", "client", "cliente", "客户编号", "会员编号", "顧客id"),
        "ordered_at": ("invoice date", "invoicedate", "order date", "date", "ordered at", "placed", "datum",
                       "bestelldatum", "date de commande", "fecha", "fecha de pedido", "订单日期", "下单时间", "注文日時"),
        "product_id": ("product id", "productid", "sku", "stock code", "stockcode", "item", "item id", "article",
                       "artikelnr", "artikel", "produit", "producto", "商品编码", "商品id", "品番"),
        "quantity": ("quantity", "qty", "units", "menge", "anzahl", "quantite", "cantidad", "数量", "個数"),
        "unit_price": ("unit price", "unitprice", "price", "preis", "einzelpreis", "prix", "prix unitaire", "precio",
                       "单价", "単価"),
        "line_total": ("amount", "total", "line total", "sales", "revenue", "value", "betrag", "summe", "montant",
                       "importe", "金额", "金額", "dollar value"),
        "discount": ("discount", "rabatt", "remise", "descuento", "折扣", "割引"),
        "currency": ("currency", "ccy", "waehrung", "wahrung", "devise", "moneda", "币种", "货币", "通貨"),
        "status": ("status", "state", "order status", "etat", "estado", "状态", "订单状态", "ステータス"),
        "store_id": ("store", "store id", "shop", "filiale", "magasin", "tienda", "门店", "店舗"),
        "country": ("country", "ship country", "shipping country", "land", "pays", "pais", "国家"),
    },
    "interactions": {
        "interaction_id": ("interaction id", "case id", "ticket id", "ticket", "case", "fall", "工单号"),
        "customer_system": ("crm", "system", "customer system", "source system"),
        "source_customer_id": ("customer id", "customerid", "customer", "client id", "kundennr", "客户编号"),
        "interaction_type": ("type", "kind", "interaction type", "category", "art", "类型"),
        "interaction_channel": ("channel", "via", "kanal", "canal", "渠道"),
        "occurred_at": ("date", "occurred", "created", "timestamp", "datum", "时间"),
        "satisfaction_score": ("csat", "satisfaction", "score", "rating", "zufriedenheit", "满意度"),
        "subject": ("subject", "title", "betreff", "sujet", "asunto", "主题"),
        "campaign_id": ("campaign", "campaign id", "kampagne", "campagne", "活动"),
    },
    "products": {
        "product_id": ("product id", "productid", "sku", "stock code", "stockcode", "item id", "artikelnr", "商品编码"),
        "product_name": ("product name", "name", "description", "title", "bezeichnung", "nom", "nombre", "商品名称"),
        "category": ("category", "kategorie", "categorie", "categoria", "类别", "分类"),
        "brand": ("brand", "marke", "marque", "marca", "品牌"),
        "list_price_usd": ("list price", "price", "preis", "prix", "precio"),
        "updated_at": ("updated", "updated at", "modified", "last modified"),
    },
    "fx_rates": {
        "rate_date": ("date", "rate date", "datum", "fecha"),
        "currency": ("currency", "ccy", "waehrung", "devise", "moneda"),
        "rate": ("rate", "usd per unit", "per unit", "kurs", "taux", "tasa"),
    },
}


def fold(name: str) -> str:
    """'Customer-ID' -> 'customer id'; accents dropped; CJK kept."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", plain)           # CustomerID -> Customer ID
    return re.sub(r"\s+", " ", re.sub(r"[^\w]+|_", " ", spaced)).strip().lower()


def guess_field(column: str, entity: str, taken: set[str]) -> tuple[str, bool] | None:
    """(canonical field, exact) for a column name, or None; ``exact`` when the folded name is a
    known spelling, not merely contains one."""
    folded = fold(column)
    squeezed = folded.replace(" ", "")
    candidates = SYNONYMS[entity]
    for field, names in candidates.items():
        if field not in taken and (folded in names or squeezed in {n.replace(" ", "") for n in names}):
            return field, True
    # Otherwise a known name closing the column's name, its head noun ("Billing Country", "客户电话");
    # "Phone Service" is not a phone.
    for field, names in candidates.items():
        if field not in taken and any(len(n) > 2 and (folded.endswith(" " + n) or (_cjk(n) and folded.endswith(n)))
                                      for n in names):
            return field, False
    return None


FIRST_NAMES = ("first name", "firstname", "given name", "forename", "vorname", "prenom", "nombre", "名")
LAST_NAMES = ("last name", "lastname", "surname", "family name", "nachname", "nom de famille", "nom", "apellido",
              "apellidos", "姓")


def name_parts(columns: list[str]) -> tuple[str, str] | None:
    """(first-name column, last-name column) when a file splits the name in two."""
    first = next((c for c in columns if fold(c) in FIRST_NAMES), None)
    last = next((c for c in columns if fold(c) in LAST_NAMES and c != first), None)
    return (first, last) if first and last else None


def _cjk(text: str) -> bool:
    return any("\u3040" <= ch <= "\u9fff" for ch in text)


def entity_of(columns: list[str]) -> str:
    """The entity whose known column names the file's columns match best."""
    def score(entity: str) -> int:
        taken: set[str] = set()
        hits = 0
        for column in columns:
            guess = guess_field(column, entity, taken)
            if guess:
                taken.add(guess[0])
                hits += 2 if guess[1] else 1
        return hits
    return max(SYNONYMS, key=lambda entity: (score(entity), entity == "customers"))
