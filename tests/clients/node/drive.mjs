// Drives whatsapp-api-js, as its users call it, against Relay on loopback.
//
//   node drive.mjs '<json>'   json: {base, token, phoneID, version, to, others, quoted, inbound,
//                                    template, png (base64), scenarios: [names]}
//
// Prints one JSON object: {name: {requests: [{method, url, body, status}], answer, error}} for each
// scenario asked for. whatsapp-api-js aims every call at graph.facebook.com; its `ponyfill.fetch` option
// is how a tenant aims it at Relay instead: this fetch rewrites that origin to `base` and refuses any
// address outside 127.0.0.0/8.
import { WhatsAppAPI } from "whatsapp-api-js";
import {
  ActionButtons, ActionCallPermission, ActionCatalog, ActionContactRequest, ActionCTA, ActionDataExchangeFlow,
  ActionList, ActionLocation, ActionNavigateFlow, ActionProduct, ActionProductList, Address, Audio, Birthday,
  Body, BodyComponent, BodyParameter, Button, CarouselCard, CarouselComponent, CatalogComponent, CatalogProduct,
  Contacts, CopyComponent, Currency, DateTime, Document, Email, FlowComponent, Footer, Header, HeaderComponent,
  HeaderParameter, Image, Interactive, ListSection, Location, LTOComponent, MPMComponent, Name, Organization,
  PayloadComponent, Phone, Product, ProductSection, Reaction, Row, SkipButtonComponent, Sticker,
  TapTargetComponent, Template, Text, Url, URLComponent, Video,
} from "whatsapp-api-js/messages";

const GRAPH = "https://graph.facebook.com/";
const ctx = JSON.parse(process.argv[2]);
let log = [];

async function loopbackFetch(input, init = {}) {
  let url = String(input);
  if (url.startsWith(GRAPH)) url = `${ctx.base}/${url.slice(GRAPH.length)}`;
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(new URL(url).hostname)) {
    throw new Error(`refused to call outside loopback: ${url}`);
  }
  const response = await fetch(url, init);
  log.push({ method: init.method ?? "GET", url, body: typeof init.body === "string" ? init.body : null,
             status: response.status });
  return response;
}

const api = new WhatsAppAPI({ token: ctx.token, v: ctx.version, secure: false, ponyfill: { fetch: loopbackFetch } });
const send = (message, ...rest) => api.sendMessage(ctx.phoneID, ctx.to, message, ...rest);
const IMAGE = "https://cdn.example.com/receipt.jpg";

const SCENARIOS = {
  // -- every ClientMessage whatsapp-api-js builds, through sendMessage -----------------------------
  "text": () => send(new Text("Your order: https://shop.example.com/o/1")),
  "text with preview": () => send(new Text("See https://shop.example.com/o/1", true)),
  "text in reply, tracked": () => send(new Text("Thanks!"), ctx.quoted, "order-1"),
  "text to a recipient object": () => api.sendMessage(ctx.phoneID, { phone: ctx.to }, new Text("Hello")),
  "image by link": () => send(new Image(IMAGE, false, "The receipt")),
  "image by id": () => send(new Image("1479537139650973", true)),
  "video by link": () => send(new Video("https://cdn.example.com/howto.mp4", false, "How to")),
  "video by id": () => send(new Video("1013859600285442", true)),
  "audio by link": () => send(new Audio("https://cdn.example.com/note.mp3")),
  "voice note by id": () => send(new Audio("1013859600285444", true, true)),
  "document by link": () => send(new Document("https://cdn.example.com/invoice.pdf", false, "November",
                                              "invoice.pdf")),
  "document by id": () => send(new Document("1013859600285443", true)),
  "sticker by link": () => send(new Sticker("https://cdn.example.com/thanks.webp")),
  "sticker by id": () => send(new Sticker("798882015472548", true)),
  "location": () => send(new Location(-122.1613, 37.44216, "Shop", "1 Hacker Way, Menlo Park")),
  "contacts": () => send(new Contacts(
    [new Name("Ada Lovelace", "Ada", "Lovelace"), new Phone("+1 (555) 010-0100", "WORK", "15550100100"),
     new Email("ada@example.com", "WORK"), new Organization("Analytical Engines", "R&D", "Countess"),
     new Address("United Kingdom", "GB", undefined, "London", "1 St James's Sq", "SW1Y 4JH", "HOME"),
     new Birthday("1815", "12", "10"), new Url("https://example.com/ada", "WORK")],
    [new Name("Charles Babbage", "Charles"), new Phone("+44 20 7946 0000")])),
  "reaction": () => send(new Reaction(ctx.quoted, "\u{1F44D}")),
  "reaction removed": () => send(new Reaction(ctx.quoted)),
  "reply buttons": () => send(new Interactive(
    new ActionButtons(new Button("yes", "Yes"), new Button("no", "No")),
    new Body("Is this right?"), new Header("Your order"), new Footer("Reply below"))),
  "reply buttons with an image header": () => send(new Interactive(
    new ActionButtons(new Button("keep", "Keep")), new Body("Keep it?"), new Header(new Image(IMAGE)))),
  "section list": () => send(new Interactive(
    new ActionList("Options", new ListSection("Pizza", new Row("margherita", "Margherita", "Tomato"),
                                              new Row("funghi", "Funghi"))),
    new Body("Choose one"), new Header("Menu"), new Footer("Prices include tax"))),
  "url button": () => send(new Interactive(new ActionCTA("Track", "https://shop.example.com/t"),
                                           new Body("Track your parcel"))),
  "flow to a screen": () => send(new Interactive(
    new ActionNavigateFlow("booking-1", "1234567890", "Book", "WELCOME", { table: "2" }),
    new Body("Book a table"))),
  "flow with data exchange": () => send(new Interactive(
    new ActionDataExchangeFlow("booking-2", "1234567890", "Book"), new Body("Book a table"))),
  "location request": () => send(new Interactive(new ActionLocation(), new Body("Where should we deliver?"))),
  "call permission request": () => send(new Interactive(new ActionCallPermission(), new Body("May we call?"))),
  "contact info request": () => send(new Interactive(new ActionContactRequest(), new Body("Share your details"))),
  "catalog": () => send(new Interactive(new ActionCatalog(new Product("sku-1")), new Body("Browse our shop"))),
  "product": () => send(new Interactive(new ActionProduct(new CatalogProduct("sku-1", "cat-1")),
                                        new Body("Today only"))),
  "products": () => send(new Interactive(
    new ActionProductList("cat-1", new ProductSection("Shoes", new Product("sku-1"), new Product("sku-2"))),
    new Body("This week's arrivals"), new Header("New in"))),
  "template": () => send(new Template(ctx.template, "en_US",
    new HeaderComponent(new HeaderParameter(new Image("https://cdn.example.com/box.jpg"))),
    new BodyComponent(new BodyParameter("Ada"), new BodyParameter(new Currency(10990, "USD", "$10.99")),
                      new BodyParameter(new DateTime("December 6"))),
    new URLComponent("o-1"), new PayloadComponent("stop"), new CopyComponent("25OFF"))),
  "template with named parameters": () => send(new Template(ctx.template, "en_US",
    new BodyComponent(new BodyParameter("Ada", "first_name")))),
  "template without components": () => send(new Template(ctx.template, "en_US")),
  "template for a one-time password": () => send(Template.OTP(ctx.template, "en_US", "123456")),
  "template carousel": () => send(new Template(ctx.template, "en_US",
    new BodyComponent(new BodyParameter("Ada")),
    new CarouselComponent(
      new CarouselCard(new Image(IMAGE), new BodyComponent(new BodyParameter("Red")), new PayloadComponent("red")),
      new CarouselCard(new Image(IMAGE), new BodyComponent(new BodyParameter("Blue")),
                       new PayloadComponent("blue"))))),
  "template limited time offer": () => send(new Template(ctx.template, "en_US",
    new LTOComponent(1767225600000), new CopyComponent("25OFF"), new SkipButtonComponent(),
    new URLComponent("o-1"))),
  "template catalog": () => send(new Template(ctx.template, "en_US", new BodyComponent(new BodyParameter("Ada")),
                                              new CatalogComponent(new Product("sku-1")))),
  "template multi-product": () => send(new Template(ctx.template, "en_US",
    new MPMComponent(new Product("sku-1"), new ProductSection("Shoes", new Product("sku-1"), new Product("sku-2"))))),
  "template flow": () => send(new Template(ctx.template, "en_US",
    new FlowComponent("booking-1", { table: "2" }))),
  "template tap target": () => send(new Template(ctx.template, "en_US",
    new TapTargetComponent("Open the shop", "https://shop.example.com"))),
  "broadcast": () => Promise.all(api.broadcastMessage(ctx.phoneID, [ctx.to, ...ctx.others], new Text("Sale!"),
                                                      50, 0)),

  // -- the calls beside sends -------------------------------------------------------------------------
  "mark read": () => api.markAsRead(ctx.phoneID, ctx.inbound),
  "mark read with typing": () => api.markAsRead(ctx.phoneID, ctx.inbound, "text"),
  "media round trip": async () => {
    const form = new FormData();
    form.append("file", new Blob([Buffer.from(ctx.png, "base64")], { type: "image/png" }));
    const uploaded = await api.uploadMedia(ctx.phoneID, form);
    const steps = { uploaded };
    if (uploaded.id) {
      steps.info = await api.retrieveMedia(uploaded.id);
      steps.infoForNumber = await api.retrieveMedia(uploaded.id, ctx.phoneID);
      const content = await api.fetchMedia(steps.info.url);
      steps.content = { status: content.status, type: content.headers.get("content-type"),
                        base64: Buffer.from(await content.arrayBuffer()).toString("base64") };
      steps.deleted = await api.deleteMedia(uploaded.id, ctx.phoneID);
      steps.afterDelete = await api.retrieveMedia(uploaded.id);
    }
    return steps;
  },
  "unknown media": async () => ({ info: await api.retrieveMedia("4242424242"),
                                  deleted: await api.deleteMedia("4242424242") }),

  // -- what whatsapp-api-js offers and Relay does not serve ---------------------------------------------
  "group recipient": () => api.sendMessage(ctx.phoneID, { group: "120363025246125888" }, new Text("Hi all")),
  "business-scoped user id recipient": () => api.sendMessage(ctx.phoneID, "US.13491208655302741918",
                                                             new Text("Hello")),
  "initiate call": () => api.initiateCall(ctx.phoneID, ctx.to, "v=0"),
  "pre-accept call": () => api.preacceptCall(ctx.phoneID, "wacid.1", "v=0"),
  "accept call": () => api.acceptCall(ctx.phoneID, "wacid.1", "v=0"),
  "reject call": () => api.rejectCall(ctx.phoneID, "wacid.1"),
  "terminate call": () => api.terminateCall(ctx.phoneID, "wacid.1"),
  "create QR code": () => api.createQR(ctx.phoneID, "Hello"),
  "retrieve QR codes": () => api.retrieveQR(ctx.phoneID),
  "retrieve a QR code": () => api.retrieveQR(ctx.phoneID, "qr-1"),
  "update QR code": () => api.updateQR(ctx.phoneID, "qr-1", "Hi"),
  "delete QR code": () => api.deleteQR(ctx.phoneID, "qr-1"),
  "block user": () => api.blockUser(ctx.phoneID, ctx.to),
  "unblock user": () => api.unblockUser(ctx.phoneID, ctx.to),
};

const results = {};
for (const name of ctx.scenarios) {
  log = [];
  const result = { requests: log };
  try {
    result.answer = await SCENARIOS[name]();
  } catch (error) {
    result.error = String(error?.stack ?? error);
  }
  results[name] = result;
}
process.stdout.write(JSON.stringify(results));
