"""Baseline 1 and 2: the tutorial pattern, exactly as most FastAPI projects write it.

    TUTORIAL_DATABASE_URL=postgresql://postgres@127.0.0.1/catalog_bench \\
        uvicorn tutorial:app --app-dir bench/baselines
    TUTORIAL_NULLPOOL=1 ...   # baseline 2: a new connection per request

A sync engine (`pool_size=10, max_overflow=20`), `SessionLocal` with
`autoflush=False, autocommit=False`, a `def get_db()` dependency, `def` routes that
FastAPI runs in its thread pool, and `db.query(...)`. The search is written the same
naive way: ILIKE over name and description. It reads catalog's own tables (SQLite
stores prices as integer cents, which this model reads as they are: the cost is the
same). Not code to copy: the benchmark's yardstick.
"""

import os
from datetime import datetime
from decimal import Decimal

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, DateTime, Integer, Numeric, String, Text, create_engine, or_
from sqlalchemy.orm import Session, declarative_base, sessionmaker
from sqlalchemy.pool import NullPool

SQLALCHEMY_DATABASE_URL = os.environ["TUTORIAL_DATABASE_URL"]

if os.environ.get("TUTORIAL_NULLPOOL"):
    engine = create_engine(SQLALCHEMY_DATABASE_URL, poolclass=NullPool)
elif SQLALCHEMY_DATABASE_URL.startswith("sqlite"):
    engine = create_engine(SQLALCHEMY_DATABASE_URL, connect_args={"check_same_thread": False})
else:
    engine = create_engine(SQLALCHEMY_DATABASE_URL, pool_size=10, max_overflow=20)
SessionLocal = sessionmaker(bind=engine, autoflush=False, autocommit=False)
Base = declarative_base()


class Product(Base):  # type: ignore[valid-type,misc]
    __tablename__ = "products"

    id = Column(Integer, primary_key=True, index=True)
    sku = Column(String(64), unique=True, index=True)
    name = Column(String(200))
    description = Column(Text)
    price = Column(Numeric(12, 2))
    stock = Column(Integer)
    category = Column(String(100))
    version = Column(Integer)
    created_at = Column(DateTime(timezone=True))
    updated_at = Column(DateTime(timezone=True))


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku: str
    name: str
    description: str
    price: Decimal
    stock: int
    category: str | None
    created_at: datetime
    updated_at: datetime


app = FastAPI()


def get_db():  # type: ignore[no-untyped-def]
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


@app.get("/health/live")
def live() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/products/{product_id}", response_model=ProductOut)
def read_product(product_id: int, db: Session = Depends(get_db)):  # type: ignore[no-untyped-def]
    product = db.query(Product).filter(Product.id == product_id).first()
    if product is None:
        raise HTTPException(status_code=404, detail="Product not found")
    return product


@app.get("/products", response_model=list[ProductOut])
def read_products(  # type: ignore[no-untyped-def]
    skip: int = 0,
    limit: int = 20,
    q: str | None = None,
    created_after: datetime | None = None,
    sort: str | None = None,
    db: Session = Depends(get_db),
):
    query = db.query(Product)
    if q:
        query = query.filter(or_(Product.name.ilike(f"%{q}%"), Product.description.ilike(f"%{q}%")))
    if created_after:
        query = query.filter(Product.created_at > created_after)
    if sort == "-created_at":
        query = query.order_by(Product.created_at.desc())
    else:
        query = query.order_by(Product.id)
    return query.offset(skip).limit(limit).all()
